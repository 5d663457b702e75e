"""How `cvlab gradcheck` shows a check's rows: the rich table and the columns of gradcheck.csv
(shared by the checks of cvlab's layers and those of a student's code, cvlab.impl)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from cvlab.checks import CheckRow

CSV_COLUMNS = ("layer", "what", "metric", "error", "tolerance", "passed", "rel_error")


def table_of(name: str, rows: list[CheckRow], seconds: float) -> Table:
    """The table of one check's rows: each input or parameter (or compared output), the
    course's relative error, the error the row is judged on, its bound and PASS/FAIL."""
    table = Table(title=f"gradcheck {name} ({seconds:.2f}s)", title_justify="left")
    table.add_column("input / parameter")
    table.add_column("course rel error", justify="right")
    table.add_column("judged on")
    table.add_column("error", justify="right")
    table.add_column("tolerance", justify="right")
    table.add_column("result")
    for row in rows:
        result = "[green]PASS[/green]" if row.passed else "[bold red]FAIL[/bold red]"
        table.add_row(escape(row.label), f"{row.rel_error:.2e}", row.metric, f"{row.error:.2e}",
                      f"{row.tolerance:.0e}", result)
    return table
