"""What `cvlab plot` reads from a run folder: config, metrics, summary, weights.

Everything here works from the files the trainers leave behind (config.yaml, metrics.csv,
summary.json, model.npz), read through cvlab.records.reader; nothing is re-trained or
re-computed from data, and nothing read can execute code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cvlab.records import files
from cvlab.records.files import CONFIG_NAME, MODEL_NAME
from cvlab.records.reader import RunFolder
from cvlab.records.summary import RunSummary


@dataclass
class RunRecord:
    """One run folder as read from disk.

    `config` is the resolved config.yaml (nested dict), `flat` the same with dotted keys,
    `metrics` the metrics.csv frame (empty when the run wrote none), `summary` summary.json
    (a RunSummary: the final numbers every table and figure reads).
    """

    path: Path
    config: dict[str, Any]
    flat: dict[str, Any]
    metrics: pd.DataFrame
    summary: RunSummary
    label: str = ""

    def get(self, key: str, default: Any = None) -> Any:
        """A config value by dotted key (`model.weight_scale`)."""
        return self.flat.get(key, default)

    @property
    def status(self) -> str:
        return self.summary.status

    @property
    def model_type(self) -> str:
        return str(self.summary.model_type or self.get("model.type") or "")

    @property
    def family(self) -> str | None:
        """numpy | torch | captioning | demo, as the run recorded it."""
        return self.summary.family

    def metric(self, name: str) -> float:
        """A final metric of the run's summary (NaN when it has none)."""
        value = self.summary.metric(name)
        return math.nan if value is None else value

    @property
    def experiment(self) -> str | None:
        name = self.get("experiment")
        return str(name) if name else None

    @property
    def normalization(self) -> str | None:
        """The normalization the run actually used: `none` for baseline runs."""
        norm = self.get("model.normalization")
        if norm is None:
            return None
        return "none" if self.get("baseline") or not norm else str(norm)


def flatten(tree: Any) -> dict[str, Any]:
    """cvlab.records.files.flatten with lists as tuples (hashable, for grouping runs)."""
    return {key: tuple(value) if isinstance(value, list) else value
            for key, value in files.flatten(tree).items()}


def load_run(run_dir: Path) -> RunRecord:
    """Read one run folder through the one reader (cvlab.records.reader): a missing file gives
    an empty part, a damaged or tampered one (any record file, also the checkpoint and weights
    files plot may not draw from) a RecordError (one line), as resume and eval give it."""
    folder = RunFolder(Path(run_dir))
    config = folder.config() if folder.has(CONFIG_NAME) else {}
    summary = folder.summary() or RunSummary(status="failed", error="no summary.json")
    folder.check_state_files()  # with the two reads above: folder.check()
    return RunRecord(path=folder.path, config=config, flat=flatten(config),
                     metrics=folder.metrics(), summary=summary)


def column(frame: pd.DataFrame, name: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `frame` where `name` is set: (x values, `name` values)."""
    if name not in frame.columns or x not in frame.columns:
        return np.empty(0), np.empty(0)
    logged = frame.attrs.get("logged", {}).get(name)
    rows = frame[logged if logged is not None else frame[name].notna().to_numpy()]
    return rows[x].to_numpy(dtype=float), rows[name].to_numpy(dtype=float)


def loss_series(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(iteration, loss) for every logged training loss, in logged order."""
    return column(frame, "loss", "iteration")


def iterations_per_epoch(frame: pd.DataFrame) -> float | None:
    """Training iterations in one epoch: the most loss rows logged under one epoch value."""
    if "epoch" not in frame.columns:
        return None
    logged = frame.attrs.get("logged", {}).get("loss")
    if logged is None or not logged.any():
        return None
    counts = frame.loc[logged, "epoch"].value_counts()
    return float(counts.max()) if len(counts) and counts.max() > 1 else None


def accuracy_series(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(epoch, accuracy) at each check for `name` in train_acc / val_acc.

    The x value is the check's iteration over the iterations per epoch, so a check after
    the k-th epoch sits at k whether the trainer logged it under epoch k (numpy Solver) or
    under the epoch index k-1 (torch trainer), and the check after the first iteration sits
    at 0; without loss rows, the epoch column.
    """
    per_epoch = iterations_per_epoch(frame)
    if per_epoch is None:
        x_name = "epoch" if "epoch" in frame.columns else "iteration"
        return column(frame, name, x_name)
    iterations, values = column(frame, name, "iteration")
    # the check after the first step (the course's "epoch 0" point) sits at 0
    return np.where(iterations <= 1, 0.0, iterations / per_epoch), values


# --- weights ---------------------------------------------------------------------------------


def first_layer_filters(run: RunRecord) -> np.ndarray | None:
    """First-layer conv filters (F, C, HH, WW) from the run's model.npz, for model types whose
    spec has the "filters" plot hook; None when there are none to draw."""
    from cvlab.images import first_conv_weights
    from cvlab.models.registry import spec_for

    try:
        spec = spec_for(run.model_type)
    except ValueError:
        return None
    folder = RunFolder(run.path)
    if "filters" not in spec.plot_hooks or not folder.has(MODEL_NAME):
        return None
    return first_conv_weights(folder.weights("model")["weights"])
