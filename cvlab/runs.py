"""Run folders: the metrics logger, summary.json, and the summary of a sweep.

Every run writes into one folder (passed down as a Path):
    config.yaml     the resolved config
    metrics.csv     one flushed row per event (iteration, check, epoch end)
    summary.json    status (running/completed/failed/diverged/interrupted), dataset,
                    wall time, final metrics
    <command>.log   the log
A sweep folder holds one such folder per job (0/, 1/, ...) and, when it ends,
sweep_summary.csv and sweep_summary.json.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

STATUSES = ("running", "completed", "failed", "diverged", "interrupted")
BASE_COLUMNS = ("iteration", "epoch", "loss")


def atomic_write(path: Path, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Call `write(file)` on a temporary file beside `path`, fsync, then rename it over `path`,
    so that readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (see atomic_write)."""
    atomic_write(path, lambda f: f.write(text))


def _clean(value: Any) -> Any:
    """JSON-safe value: numpy scalars to Python, non-finite floats to strings."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary.json as a dict ({} when there is none or it cannot be read)."""
    path = Path(run_dir) / "summary.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_summary(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into the run's summary.json (atomically) and return the whole summary."""
    if "status" in fields and fields["status"] not in STATUSES:
        raise ValueError(f"status {fields['status']!r} is not one of {', '.join(STATUSES)}")
    summary = read_summary(run_dir)
    summary.update(_clean(dict(fields)))
    atomic_write_text(Path(run_dir) / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


class MetricsLogger:
    """Appends rows to `run_dir/metrics.csv` under a fixed header; each row is flushed.

    The header is `iteration, epoch, loss` followed by the run's own metric columns
    (for example train_acc, val_acc, lr, elapsed_s). A row may leave columns empty.
    Opening an existing file with the same header appends (resumed runs); rows past
    `truncate_after_iteration` are dropped first, so a resumed run does not log twice.
    """

    def __init__(
        self,
        run_dir: Path,
        columns: Sequence[str],
        filename: str = "metrics.csv",
        truncate_after_iteration: int | None = None,
    ) -> None:
        extra = [c for c in columns if c not in BASE_COLUMNS]
        self.columns = list(BASE_COLUMNS) + extra
        self.path = Path(run_dir) / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows: list[dict[str, str]] = []
        if self.path.exists() and truncate_after_iteration is not None:
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames == self.columns:
                    rows = [
                        r for r in reader
                        if r["iteration"] == "" or int(r["iteration"]) <= truncate_after_iteration
                    ]
        self._file = self.path.open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="raise")
        self._writer.writeheader()
        for row in rows:
            self._writer.writerow(row)
        self._file.flush()
        self.start = time.perf_counter()

    def log(self, **row: Any) -> None:
        """Write one row; unknown column names raise ValueError."""
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown metrics columns {sorted(unknown)}; valid: {self.columns}")
        if "elapsed_s" in self.columns and "elapsed_s" not in row:
            row["elapsed_s"] = round(time.perf_counter() - self.start, 4)
        self._writer.writerow({k: _format(v) for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _format(value: Any) -> Any:
    if value is None:
        return ""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


def read_metrics(run_dir: Path, filename: str = "metrics.csv"):
    """metrics.csv as a pandas DataFrame (empty cells are NaN)."""
    import pandas as pd

    return pd.read_csv(Path(run_dir) / filename)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep (numbered subfolders), in job order."""
    dirs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(dirs, key=lambda p: int(p.name))


def summarize_sweep(sweep_dir: Path, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Collect every job's summary into sweep_summary.json / .csv and return the rows.

    A job folder without summary.json (killed before it wrote one) is reported as failed.
    """
    import pandas as pd

    rows = []
    for job in job_dirs(sweep_dir):
        summary = read_summary(job)
        row: dict[str, Any] = {"job": int(job.name), "status": summary.get("status", "failed")}
        overrides = summary.get("overrides")
        if overrides is not None:
            row["overrides"] = " ".join(overrides)
        final = summary.get("metrics", {})
        for key, value in final.items():
            if keys is None or key in keys:
                row[key] = value
        for key in ("wall_time_s", "dataset", "error"):
            if key in summary:
                row[key] = summary[key]
        rows.append(row)
    atomic_write_text(Path(sweep_dir) / "sweep_summary.json", json.dumps(rows, indent=2) + "\n")
    frame = pd.DataFrame(rows)
    atomic_write_text(Path(sweep_dir) / "sweep_summary.csv", frame.to_csv(index=False))
    return rows
