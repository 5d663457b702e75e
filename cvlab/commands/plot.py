"""`cvlab plot run=<run or sweep folder>|latest`: figures, a table and report.md.

The figures go into `<target>/plots/` and the report to `<target>/report.md`: plotting adds to
the folder it plots and creates no run folder of its own.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cvlab.config.commands import PlotConfig

log = logging.getLogger(__name__)


def main(cfg: PlotConfig, run_dir: Path, overrides: list[str] | None = None) -> int:
    from cvlab.plot import plot_folder, resolve_target

    target = resolve_target(cfg.run, cfg.outputs_root)
    result = plot_folder(target, show_table=cfg.show_table)
    for note in result.notes:
        print(note, flush=True)
    for path in result.files:
        log.debug("wrote %s", path)
    print(f"plots of {result.target.kind} {target}: {len(result.figures)} figure(s) in "
          f"{target / 'plots'}, report {result.report}", flush=True)
    return 0
