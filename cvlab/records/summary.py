"""summary.json: what a run left behind, the same for every family and command.

    write_summary(run_dir, status="completed", metrics={...})
    summary = read_summary(run_dir)        # a RunSummary, or None
"""

from __future__ import annotations

import dataclasses
import errno
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvlab.records.files import SUMMARY_NAME, atomic_write_text, to_json

# `stopped` is never written: it is what a reader reports for a `running` run whose process is
# gone (killed without a chance to record how it ended).
STATUSES = ("running", "completed", "failed", "diverged", "interrupted", "stopped")

# The metric names every training family writes into RunSummary.metrics (when it has them).
METRIC_KEYS = (
    "best_val_acc", "final_val_acc", "best_train_acc", "final_train_acc", "test_acc",
    "val_bleu1", "val_bleu4", "val_course_bleu", "train_bleu1", "train_bleu4",
    "train_course_bleu", "test_bleu4",
    "final_loss", "final_loss_mean", "final_loss_window", "iterations", "epochs",
    "train_time_s", "images_per_s", "captions_per_s",
)


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
    tags: list[str] = field(default_factory=list)  # the run's labels (config `tags`)
    resumed_from: str | None = None
    error: str | None = None
    wall_time_s: float | None = None
    cpu_time_s: float | None = None
    files: list[str] = field(default_factory=list)
    pid: int | None = None  # the process running it, and its host (while it runs)
    host: str | None = None
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
        for name in ("overrides", "files", "tags"):
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


