"""`cvlab gradcheck impl=<folder> [layer=<check>|all]`: the verdict on every course function or
model a student's folder holds (cvlab.impl.verdicts), in the files `cvlab gradcheck` writes.

Per check: a table of its rows (the forward comparisons with cvlab's and cvlab's gradient
check run on their functions, the worst over `seeds` seeds), then its verdict line: passes,
wrong forward, wrong backward (which output or gradient, its error and bound), not
implemented, missing, crashed or timed out (with the traceback of their own frames). At the
end one table with a row per check. gradcheck.csv holds every row (the columns of `cvlab
gradcheck` plus verdict, functions and detail; a check without rows has one line),
summary.json the counts by verdict; what their code printed is in impl_output.log.
Exit code 0 when every check whose functions were found passes, 1 otherwise.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from cvlab.checks.table import CSV_COLUMNS, table_of
from cvlab.config.commands import GradcheckConfig
from cvlab.errors import UserError
from cvlab.impl.course import find_layout
from cvlab.impl.remote import Implementation
from cvlab.impl.verdicts import UNITS, Unit, UnitResult, judge
from cvlab.progress import console
from cvlab.records.summary import write_summary

IMPL_COLUMNS = (*CSV_COLUMNS, "verdict", "functions", "detail")
LOG_NAME = "impl_output.log"
STYLE = {"passes": "green", "missing": "yellow"}


def select_units(layer: str) -> list[Unit]:
    """The checks of `layer=` ('all', or one check's name)."""
    if layer == "all":
        return list(UNITS)
    for unit in UNITS:
        if unit.name == layer:
            return [unit]
    raise UserError(f"layer={layer} is not a check of impl=; valid names: all, "
                    f"{', '.join(unit.name for unit in UNITS)} (e.g. layer=batchnorm)")


def verdict_line(result: UnitResult) -> str:
    """`<check> (<file>: <functions>): <verdict>: <detail>`, coloured."""
    style = STYLE.get(result.verdict, "bold red")
    return (f"[bold]{result.unit.name}[/bold] ({escape(result.files)}: "
            f"{', '.join(result.unit.functions)}): [{style}]{result.verdict}[/{style}]"
            + (f": {escape(result.detail)}" if result.detail else ""))


def show(result: UnitResult) -> None:
    if result.rows:
        console.print(table_of(f"{result.unit.name} ({escape(result.files)})", result.rows,
                               result.seconds))
    console.print(verdict_line(result))
    if result.trace:
        console.print(escape(result.trace), highlight=False)


def csv_lines(result: UnitResult) -> list[list[object]]:
    """The result's lines of gradcheck.csv: one per row, or one for a check without rows."""
    common = [result.verdict, " ".join(result.unit.functions), result.detail]
    rows = [[result.unit.name, row.label, row.metric, repr(float(row.error)), row.tolerance,
             row.passed, repr(float(row.rel_error)), *common] for row in result.rows]
    return rows or [[result.unit.name, result.detail, "verdict", repr(math.nan), 0.0,
                     result.verdict == "passes", repr(math.nan), *common]]


def summary_table(results: list[UnitResult]) -> Table:
    table = Table(title="impl= verdicts", title_justify="left")
    for column in ("check", "file", "verdict", "detail"):
        table.add_column(column)
    for result in results:
        style = STYLE.get(result.verdict, "bold red")
        table.add_row(result.unit.name, escape(result.files),
                      f"[{style}]{result.verdict}[/{style}]", escape(result.detail))
    return table


def main(cfg: GradcheckConfig, run_dir: Path) -> int:
    """Judge the checks of `layer=` on the folder `impl=`; the exit code."""
    layout = find_layout(str(cfg.impl))
    units = select_units(cfg.layer)
    seeds = tuple(cfg.seed + i for i in range(cfg.seeds))
    start = time.perf_counter()
    write_summary(run_dir, status="running", layer=cfg.layer, seed=cfg.seed)
    console.print(f"impl={layout.folder}: your code runs in worker processes (timeout_s="
                  f"{cfg.timeout_s:g} per check, memory_gb={cfg.memory_gb:g}); what it prints "
                  f"goes to {run_dir / LOG_NAME}", highlight=False)
    results = []
    with Implementation(layout, run_dir / LOG_NAME, cfg.timeout_s, cfg.memory_gb) as impl, \
            (run_dir / "gradcheck.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(IMPL_COLUMNS)
        for unit in units:
            result = judge(impl, unit, seeds)
            show(result)
            writer.writerows(csv_lines(result))
            f.flush()
            results.append(result)
    return conclude(cfg, run_dir, results, time.perf_counter() - start)


def conclude(cfg: GradcheckConfig, run_dir: Path, results: list[UnitResult],
             wall_time: float) -> int:
    """The table of verdicts, the last line, summary.json; 0 when every found check passes."""
    console.print(summary_table(results))
    found = [r for r in results if r.found]
    failed = [r.unit.name for r in found if r.verdict != "passes"]
    counts = {verdict: sum(r.verdict == verdict for r in results)
              for verdict in dict.fromkeys(r.verdict for r in results)}
    line = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    console.print(f"impl={cfg.impl}: {len(found)} of {len(results)} checks found: {line} "
                  f"({wall_time:.1f}s); rows in {run_dir / 'gradcheck.csv'}", highlight=False)
    write_summary(run_dir, status="failed" if failed else "completed", wall_time_s=wall_time,
                  metrics={"layers": len(results), "found": len(found),
                           "checks": sum(len(r.rows) for r in results),
                           "passed": len(found) - len(failed), "failed": len(failed),
                           "failed_layers": failed},
                  details={"impl": str(cfg.impl), "verdicts": counts,
                           "by_check": {r.unit.name: r.verdict for r in results}})
    return 1 if failed else 0
