"""`cvlab gradcheck layer=<name>|all`: analytic vs numeric gradients of registered checks.

Each check (cvlab.checks registry) runs on seeded float64 inputs; a rich table per check shows
each input or parameter, the course's relative error, the error the row is judged on (rel, norm
or abs; see cvlab.checks), its tolerance and PASS/FAIL. The same rows go to
run_dir/gradcheck.csv (written as they come), and summary.json records the counts. Only the
modules of the checks that run are imported (a numpy layer does not import torch).
Exit code 0 when every row passes, 1 when any fails; an unknown name is a UserError (exit 2).
With `impl=<folder>`, a student's own functions and models are judged instead
(cvlab.impl.gradcheck): their code runs in worker processes, never in this one.
"""

from __future__ import annotations

import csv
import logging
import time
import traceback
from pathlib import Path

import numpy as np

from cvlab.checks import CheckRow, check_names, get_check
from cvlab.checks.table import CSV_COLUMNS, table_of
from cvlab.config.commands import GradcheckConfig
from cvlab.errors import UserError
from cvlab.progress import console
from cvlab.records.summary import write_summary

log = logging.getLogger(__name__)



def select_checks(layer: str, names: list[str]) -> list[str]:
    """The check names to run for `layer=<layer>` ('all' or one registered name)."""
    if layer == "all":
        return names
    if layer in names:
        return [layer]
    raise UserError(f"layer={layer} is not a registered gradient check; valid names: all, "
                    f"{', '.join(names)} (e.g. cvlab gradcheck layer=conv)")


def run_check(name: str, seed: int) -> list[CheckRow]:
    """Run one check with its own RandomState(seed); a crash becomes one failing row."""
    try:
        return get_check(name)(np.random.RandomState(seed))
    except Exception as err:  # a broken layer must not hide the other checks' results
        log.error("check %s raised:\n%s", name, "".join(traceback.format_exception(err)))
        return [CheckRow(f"error: {type(err).__name__}: {err}", float("inf"), 0.0, "raised")]


def main(cfg: GradcheckConfig, run_dir: Path, overrides: list[str] | None = None) -> int:
    if cfg.impl is not None:  # a student's folder: checked in worker processes
        from cvlab.impl.gradcheck import main as check_implementation

        return check_implementation(cfg, run_dir)
    names = select_checks(cfg.layer, check_names())
    start = time.perf_counter()
    write_summary(run_dir, status="running", layer=cfg.layer, seed=cfg.seed)
    failed_layers: list[str] = []
    num_rows = num_failed = 0
    with (run_dir / "gradcheck.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for name in names:
            check_start = time.perf_counter()
            rows = run_check(name, cfg.seed)
            seconds = time.perf_counter() - check_start
            console.print(table_of(name, rows, seconds))
            for row in rows:
                writer.writerow([name, row.label, row.metric, repr(float(row.error)),
                                 row.tolerance, row.passed, repr(float(row.rel_error))])
            f.flush()
            failures = [row for row in rows if not row.passed]
            num_rows += len(rows)
            num_failed += len(failures)
            if failures:
                failed_layers.append(name)
            log.info("%s: %d rows, %d failed (%.2fs)", name, len(rows), len(failures), seconds)
    wall_time = time.perf_counter() - start
    passed = not failed_layers
    verdict = (f"[green]all {num_rows} gradient checks passed[/green]" if passed else
               f"[bold red]{num_failed} of {num_rows} gradient checks failed[/bold red] in "
               f"{', '.join(failed_layers)}")
    console.print(f"{verdict} ({len(names)} layers, {wall_time:.1f}s); rows in "
                  f"{run_dir / 'gradcheck.csv'}")
    write_summary(run_dir, status="completed" if passed else "failed", wall_time_s=wall_time,
                  metrics={"layers": len(names), "checks": num_rows,
                           "passed": num_rows - num_failed, "failed": num_failed,
                           "failed_layers": failed_layers})
    return 0 if passed else 1
