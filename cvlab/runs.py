"""Run folders and their records: atomic writes, exclusive folders, summary.json, metrics.csv,
and the summary of a sweep.

Every run writes into one folder (passed down as a Path):
    config.yaml     the resolved config (every field, with its effective value)
    metrics.csv     one flushed row per event (iteration, evaluation), readable while it runs
    summary.json    a RunSummary: status, family, dataset, final metrics, times
    checkpoint.npz  the training state at the last epoch end (cvlab.train.state)
    <command>.log   the log
A sweep folder holds one such folder per job (0/, 1/, ...) and, when it ends (or is
interrupted), sweep_summary.csv and sweep_summary.json.

Every file cvlab writes goes through `atomic_file` (a temporary file beside the target,
fsync, rename; the temporary file is removed on any failure), except metrics.csv, which is an
append-only log flushed row by row.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import errno
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

STATUSES = ("running", "completed", "failed", "diverged", "interrupted")
BASE_COLUMNS = ("iteration", "epoch", "loss")
SUMMARY_NAME = "summary.json"
METRICS_NAME = "metrics.csv"

# The metric names every training family writes into RunSummary.metrics (when it has them).
METRIC_KEYS = (
    "best_val_acc", "final_val_acc", "best_train_acc", "final_train_acc", "test_acc",
    "val_bleu1", "val_bleu4", "val_course_bleu", "train_bleu1", "train_bleu4",
    "train_course_bleu", "test_bleu4",
    "final_loss", "final_loss_mean", "final_loss_window", "iterations", "epochs",
    "train_time_s", "images_per_s", "captions_per_s",
)


# ---- atomic writes --------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_file(path: Path, binary: bool = False) -> Iterator[IO[Any]]:
    """A file object whose content replaces `path` only when the block ends without error.

    The data goes to a temporary file beside `path`, is flushed and fsynced, then renamed over
    `path`; readers never see a half-written file, and on any failure (a full disk, an
    exception, Ctrl-C) the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb" if binary else "w", **({} if binary else {"newline": ""})) \
                as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:  # say which file
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise


def atomic_write(path: Path, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Call `write(file)` on an atomic_file for `path`."""
    with atomic_file(path, binary=binary) as f:
        write(f)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_file(path) as f:
        f.write(text)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to one dict with dotted keys (the leaves as they are)."""
    if not isinstance(tree, dict):
        return {prefix[:-1]: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def to_json(value: Any) -> str:
    """JSON text of `value` (numpy scalars as numbers, non-finite floats as strings)."""
    return json.dumps(_clean(value), indent=2) + "\n"


def _clean(value: Any) -> Any:
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


# ---- run folders ----------------------------------------------------------------------------


def create_run_dir(parent: Path, name: str | None = None) -> Path:
    """Create a new, empty run folder `parent/<name>` and return it.

    `name` defaults to the current time with microseconds (H-M-S-ffffff). The folder is
    created exclusively: when it exists already (another run took it, whatever the clock
    says), `-1`, `-2`, ... is appended until a new folder is made. OSError (permission, full
    disk) propagates.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    name = name or datetime.datetime.now().strftime("%H-%M-%S-%f")
    for attempt in range(10_000):
        candidate = parent / (name if attempt == 0 else f"{name}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, "no free run folder name", str(parent / name))


def default_run_parent(outputs_root: Path, command: str, multirun: bool) -> Path:
    """outputs_root/<command>/<date>/ (multirun: outputs_root/<command>/multirun/<date>/)."""
    day = datetime.date.today().isoformat()
    root = Path(outputs_root) / command
    return (root / "multirun" / day) if multirun else (root / day)


# ---- summary.json ---------------------------------------------------------------------------


@dataclass
class RunSummary:
    """What a run left behind, with one set of key names for every family and command.

    `metrics` holds the final numbers under the names of METRIC_KEYS (training runs) or the
    command's own (gradcheck, bench, ...); `settings` the values plots and sweep tables group
    by (weight_scale, normalization, batch_size, keep_ratio, ...); `details` anything else a
    command records.
    """

    status: str = "running"
    command: str | None = None
    family: str | None = None  # numpy | torch | captioning | demo (training runs)
    model_type: str | None = None
    experiment: str | None = None
    dataset: str | None = None
    dataset_source: str | None = None
    device: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    resumed_from: str | None = None
    error: str | None = None
    wall_time_s: float | None = None
    cpu_time_s: float | None = None
    files: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")

    def metric(self, name: str) -> float | None:
        """A final metric as a float (None when missing or not a number)."""
        value = self.metrics.get(name)
        try:
            return None if value is None or isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        """A summary from its JSON form; unknown keys go to `details`, bad values are dropped."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        details = dict(known.pop("details", None) or {})
        details.update({k: v for k, v in data.items() if k not in names})
        if known.get("status") not in STATUSES:
            known["status"] = "failed"
        for name in ("metrics", "settings"):
            if not isinstance(known.get(name, {}), dict):
                known.pop(name)
        for name in ("overrides", "files"):
            if not isinstance(known.get(name, []), list):
                known.pop(name)
        return cls(**known, details=details)


def read_summary(run_dir: Path) -> RunSummary | None:
    """The run's summary.json, or None when there is none or it is not a JSON object."""
    path = Path(run_dir) / SUMMARY_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return RunSummary.from_dict(data) if isinstance(data, dict) else None


def save_summary(run_dir: Path, summary: RunSummary) -> None:
    """Write summary.json atomically.

    When the disk is full, the atomic copy cannot be made; the existing file (a few hundred
    bytes, whose disk block is already allocated) is then overwritten in place, so that a
    failed run never stays marked `running`. Other errors propagate.
    """
    path = Path(run_dir) / SUMMARY_NAME
    text = to_json(dataclasses.asdict(summary))
    try:
        atomic_write_text(path, text)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT) or not path.is_file():
            raise
        with path.open("r+") as f:
            f.write(text)
            f.truncate()


def write_summary(run_dir: Path, **fields: Any) -> RunSummary:
    """Merge `fields` into the run's summary.json (atomically) and return the whole summary.

    Fields that are not RunSummary attributes are kept under `details`; `metrics`,
    `settings` and `details` are merged key by key.
    """
    summary = read_summary(run_dir) or RunSummary()
    names = {f.name for f in dataclasses.fields(RunSummary)}
    for name, value in fields.items():
        if name in ("metrics", "settings", "details"):
            getattr(summary, name).update(value or {})
        elif name in names:
            setattr(summary, name, value)
        else:
            summary.details[name] = value
    summary.__post_init__()
    save_summary(run_dir, summary)
    return summary


# ---- metrics.csv ----------------------------------------------------------------------------


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
        rows = _carried_rows(Path(carry_from) / filename, self.columns, carry_up_to) \
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


def _carried_rows(path: Path, columns: list[str], up_to: int | None) -> list[dict[str, str]]:
    """Rows of an earlier metrics.csv with the same header, up to iteration `up_to`."""
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != columns:
                return []
            return [row for row in reader
                    if up_to is None or row["iteration"] == "" or int(row["iteration"]) <= up_to]
    except (OSError, ValueError):
        return []


def _format(value: Any) -> Any:
    if value is None:
        return ""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


def read_metrics(run_dir: Path, filename: str = METRICS_NAME):
    """metrics.csv as a pandas DataFrame (empty cells are NaN)."""
    import pandas as pd

    return pd.read_csv(Path(run_dir) / filename)


# ---- sweeps ---------------------------------------------------------------------------------


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep (numbered subfolders), in job order."""
    dirs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(dirs, key=lambda p: int(p.name))


SWEEP_PLAN = "sweep_plan.json"


def write_sweep_plan(sweep_dir: Path, jobs: Sequence[Sequence[str]]) -> None:
    """Record the overrides of every job a sweep is about to run (before the first starts), so
    that a sweep stopped early still lists the jobs it never started."""
    plan = [{"job": number, "overrides": list(job)} for number, job in enumerate(jobs)]
    atomic_write_text(Path(sweep_dir) / SWEEP_PLAN, to_json(plan))


def read_sweep_plan(sweep_dir: Path) -> dict[int, list[str]]:
    """Job number -> overrides from the sweep's plan; {} when there is none or it is not one."""
    try:
        entries = json.loads((Path(sweep_dir) / SWEEP_PLAN).read_text())
        return {int(e["job"]): [str(o) for o in e["overrides"]] for e in entries}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def close_interrupted_jobs(sweep_dir: Path) -> list[int]:
    """After a sweep was interrupted: mark its jobs still `running` (their worker was stopped
    before it could say so) or without a summary (stopped while starting) as `interrupted`,
    and remove the temporary files of writes that were cut short; returns their numbers."""
    closed = []
    for job in job_dirs(sweep_dir):
        for stray in job.rglob(".*.tmp"):
            with contextlib.suppress(OSError):
                stray.unlink()
        summary = read_summary(job)
        if summary is None or summary.status == "running":
            summary = summary or RunSummary()
            summary.status = "interrupted"
            summary.error = summary.error or "the sweep was interrupted while this job ran"
            save_summary(job, summary)
            closed.append(int(job.name))
    return closed


def sweep_rows(sweep_dir: Path, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per job: job, status, overrides, metrics, settings, dataset, wall time, error.

    A job folder without a summary (killed before it wrote one) is reported as failed; a
    planned job without a folder (the sweep stopped before it) as `not_started`.
    """
    wanted = set(keys) if keys is not None else None
    rows = []
    planned = read_sweep_plan(sweep_dir)
    for job in job_dirs(sweep_dir):
        planned.pop(int(job.name), None)
        summary = read_summary(job) or RunSummary(status="failed", error="no summary.json")
        row: dict[str, Any] = {"job": int(job.name), "status": summary.status}
        if summary.overrides:
            row["overrides"] = " ".join(summary.overrides)
        for key, value in {**summary.settings, **summary.metrics}.items():
            if wanted is None or key in wanted:
                row[key] = value
        for key in ("family", "dataset", "wall_time_s", "error"):
            if getattr(summary, key) is not None:
                row[key] = getattr(summary, key)
        rows.append(row)
    rows += [{"job": number, "status": "not_started", "overrides": " ".join(overrides)}
             for number, overrides in planned.items()]
    return sorted(rows, key=lambda row: row["job"])


def summarize_sweep(sweep_dir: Path, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Write sweep_summary.json / .csv from every job's summary; return the rows."""
    import pandas as pd

    rows = sweep_rows(sweep_dir, keys)
    atomic_write_text(Path(sweep_dir) / "sweep_summary.json", to_json(rows))
    atomic_write_text(Path(sweep_dir) / "sweep_summary.csv", pd.DataFrame(rows).to_csv(index=False))
    return rows


# ---- finding runs ---------------------------------------------------------------------------


def run_folders(outputs_root: Path, command: str = "train") -> list[tuple[Path, bool]]:
    """(folder, is_sweep) of every run and sweep of `command` under `outputs_root`, oldest
    first (by the date and time in their names)."""
    root = Path(outputs_root) / command
    found: list[tuple[tuple[str, str], Path, bool]] = []
    for multirun, days in ((False, root), (True, root / "multirun")):
        if not days.is_dir():
            continue
        for day in days.iterdir():
            if not day.is_dir() or day.name == "multirun":
                continue
            found += [((day.name, t.name), t, multirun) for t in day.iterdir() if t.is_dir()]
    return [(path, sweep) for _, path, sweep in sorted(found, key=lambda item: item[0])]


def latest_run_with(outputs_root: Path, filename: str, command: str = "train") -> Path | None:
    """The newest run folder (a single run or a sweep's job) that holds `filename`."""
    for folder, sweep in reversed(run_folders(outputs_root, command)):
        jobs = list(reversed(job_dirs(folder))) if sweep else [folder]
        for job in jobs:
            if (job / filename).is_file():
                return job
    return None
