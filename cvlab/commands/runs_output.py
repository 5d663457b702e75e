"""How `cvlab runs` writes its answer: a rich table (cvlab.progress.make_console), CSV or JSON.

CSV and JSON go to stdout and nothing else does (notes such as unreadable folders go to
stderr then), so that a script can read stdout as it is. A table prints numbers with four
significant digits; CSV and JSON keep them whole (missing values: an empty cell, null).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

from cvlab.commands.runs_query import is_missing, text

MAIN_NAME, MAIN_VALUE = "main_metric", "main_metric_value"
RICH_ROWS = 1000  # more rows than this are printed as aligned columns (see print_table)


@dataclass
class Table:
    """Rows under named columns (the names CSV and JSON use); `headers` are the rich
    table's column titles when they differ, `note` a line printed after it."""

    columns: list[str]
    rows: list[list[Any]]
    headers: list[str] | None = None
    note: str | None = None
    optional: tuple[str, ...] = ()  # columns the rich table leaves out when no row has a value

    def add_main_metric(self, metrics: list[tuple[str, float] | None]) -> None:
        """Two columns: each row's main metric's name and value."""
        self.columns += [MAIN_NAME, MAIN_VALUE]
        for row, metric in zip(self.rows, metrics):
            row += list(metric) if metric is not None else [None, None]


def emit(table: Table, output_format: str) -> None:
    """Write the table to stdout as `output_format` (table, csv or json)."""
    if output_format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(table.columns)
        writer.writerows([[csv_cell(value) for value in row] for row in table.rows])
    elif output_format == "json":
        records = [{name: json_value(value) for name, value in zip(table.columns, row)}
                   for row in table.rows]
        print(json.dumps(records, indent=1, allow_nan=False))
    else:
        print_table(table)
    sys.stdout.flush()


def say(line: str, output_format: str) -> None:
    """A note: on stdout under a table, on stderr beside CSV or JSON."""
    print(line, file=sys.stdout if output_format == "table" else sys.stderr, flush=True)


def print_table(table: Table) -> None:
    """The table on the console: numbers right-aligned; a main metric shared by every row
    titled by its name. Up to RICH_ROWS rows as a rich table; more as aligned columns with a
    bold header (rich lays out about 2,000 table rows a second, too slow for 10,000 runs)."""
    headers, rows = _merged_main_metric(list(table.headers or table.columns), table.rows)
    if not rows:
        print(table.note or "no runs")
        return
    kept = [at for at, header in enumerate(headers) if header not in table.optional
            or not all(is_missing(row[at]) for row in rows)]
    headers, rows = [headers[at] for at in kept], [[row[at] for at in kept] for row in rows]
    numeric = [all(is_number(row[at]) or is_missing(row[at]) for row in rows)
               for at in range(len(headers))]
    cells = [[cell_text(value) for value in row] for row in rows]
    if len(rows) <= RICH_ROWS:
        _print_rich(headers, cells, numeric)
    else:
        _print_aligned(headers, cells, numeric)
    if table.note:
        print(table.note)


def _print_rich(headers: list[str], cells: list[list[str]], numeric: list[bool]) -> None:
    from rich.table import Table as RichTable

    from cvlab.progress import make_console

    grid = RichTable()
    for position, (header, right) in enumerate(zip(headers, numeric)):  # the first column
        grid.add_column(header, justify="right" if right else "left", overflow="fold",
                        no_wrap=position == 0)  # (a folder, a key) stays whole

    for row in cells:
        grid.add_row(*row)
    make_console(markup=False).print(grid)


def _print_aligned(headers: list[str], cells: list[list[str]], numeric: list[bool]) -> None:
    from rich.text import Text

    from cvlab.progress import make_console

    widths = [max(len(header), *(len(row[at]) for row in cells))
              for at, header in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "  ".join(value.rjust(width) if right else value.ljust(width)
                         for value, width, right in zip(values, widths, numeric)).rstrip()

    console = make_console(markup=False)
    console.print(Text(line(headers), style="bold"), highlight=False)
    console.print("  ".join("─" * width for width in widths), highlight=False)
    console.out("\n".join(line(row) for row in cells), highlight=False)


def _merged_main_metric(headers: list[str], rows: list[list[Any]]) -> tuple[list[str],
                                                                              list[list[Any]]]:
    """The two main-metric columns as one: titled by the metric when every run's is the same
    (cells: its value; left out when a column of that metric is shown already), else
    `main metric` (cells: `name value`)."""
    if MAIN_NAME not in headers:
        return headers, rows
    at = headers.index(MAIN_NAME)
    names = {row[at] for row in rows if row[at] is not None}
    if len(names) <= 1:
        title = names.pop() if names else "main metric"
        if title in headers:
            return [*headers[:at], *headers[at + 2:]], [[*row[:at], *row[at + 2:]]
                                                       for row in rows]
        merged = [[*row[:at], row[at + 1], *row[at + 2:]] for row in rows]
    else:
        title = "main metric"
        merged = [[*row[:at], f"{row[at]} {cell_text(row[at + 1])}" if row[at] else None,
                   *row[at + 2:]] for row in rows]
    return [*headers[:at], title, *headers[at + 2:]], merged


def is_number(value: Any) -> bool:
    """An int or float (true/false are not numbers)."""
    return isinstance(_plain(value), (int, float)) and not isinstance(_plain(value), bool)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, tuple)) \
        else value


def cell_text(value: Any) -> str:
    """A table cell: numbers with four significant digits, lists joined with commas."""
    value = _plain(value)
    if is_missing(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def csv_cell(value: Any) -> str:
    """A CSV cell: numbers whole, true/false, lists as [a,b] (as a where term spells them),
    missing values empty."""
    value = _plain(value)
    return "" if is_missing(value) else text(value)


def json_value(value: Any) -> Any:
    """A JSON value: missing and NaN as null, infinities as strings, tuples as lists."""
    value = _plain(value)
    if is_missing(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
