"""`cvlab plot run=<run or sweep folder>|latest`: figures, a table and report.md.

The figures go into `<target>/plots/`, the report to `<target>/report.md`; this command's own
run folder (outputs/plot/<date>/<time>/) gets a summary.json naming the target and the files.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from cvlab.config.commands import PlotConfig
from cvlab.runs import write_summary

log = logging.getLogger(__name__)


def main(cfg: PlotConfig, run_dir: Path) -> int:
    from cvlab.plot import plot_folder, resolve_target

    start = time.perf_counter()
    target = resolve_target(cfg.run, cfg.outputs_root)
    write_summary(run_dir, status="running", target=str(target))
    result = plot_folder(target, show_table=cfg.show_table)
    for note in result.notes:
        print(note, flush=True)
    files = [str(path) for path in result.files]
    for path in files:
        log.info("wrote %s", path)
    print(f"plots of {result.target.kind} {target}: {len(result.figures)} figure(s) in "
          f"{target / 'plots'}, report {result.report}", flush=True)
    write_summary(run_dir, status="completed", target=str(target), kind=result.target.kind,
                  files=files, wall_time_s=round(time.perf_counter() - start, 3))
    return 0
