"""metrics.csv: one flushed row per update of a run, readable while it goes on.

    with MetricsLogger(run_dir, ["train_acc", "val_acc", "lr"]) as logger:
        logger.log(iteration=1, epoch=0, loss=2.3)
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.records.files import METRICS_NAME, atomic_file

BASE_COLUMNS = ("iteration", "epoch", "loss")


class MetricsLogger:
    """Appends rows to `run_dir/metrics.csv` under a fixed header; each row is flushed.

    The header is `iteration, epoch, loss` followed by the run's own columns (train_acc,
    val_acc, lr, elapsed_s, ...). A row may leave columns empty. `carry_from` (a resumed run)
    starts the file with the rows of an earlier run up to its checkpoint's iteration.
    """

    def __init__(
        self,
        run_dir: Path,
        columns: Sequence[str],
        filename: str = METRICS_NAME,
        carry_from: Path | None = None,
        carry_up_to: int | None = None,
    ) -> None:
        extra = [c for c in columns if c not in BASE_COLUMNS]
        self.columns = list(BASE_COLUMNS) + extra
        self.path = Path(run_dir) / filename
        rows = _carried_rows(Path(carry_from), self.columns, carry_up_to) \
            if carry_from is not None else []
        with atomic_file(self.path) as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)
        self._file = self.path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="raise")
        self.start = time.perf_counter()

    def log(self, **row: Any) -> None:
        """Write one row; unknown column names raise ValueError."""
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown metrics columns {sorted(unknown)}; valid: {self.columns}")
        if "elapsed_s" in self.columns and "elapsed_s" not in row:
            row["elapsed_s"] = round(time.perf_counter() - self.start, 4)
        try:
            self._writer.writerow({k: _format(v) for k, v in row.items()})
            self._file.flush()
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(self.path)) from None

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _carried_rows(folder: Path, columns: list[str], up_to: int | None) -> list[dict[str, str]]:
    """The intact rows of an earlier run's metrics.csv with the same header (read by the one
    reader: a file cut mid-row keeps its rows before the cut), up to iteration `up_to`."""
    from cvlab.records.reader import RunFolder

    header, rows = RunFolder(folder).metrics_rows()
    if header != columns:
        return []
    position = header.index("iteration")
    return [dict(zip(header, row)) for row in rows
            if up_to is None or row[position].strip() == ""
            or float(row[position]) <= up_to]


def _format(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


def read_metrics(run_dir: Path, filename: str = METRICS_NAME):
    """metrics.csv as a pandas DataFrame (empty cells are NaN)."""
    import pandas as pd

    return pd.read_csv(Path(run_dir) / filename)


