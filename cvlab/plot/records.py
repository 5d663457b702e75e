"""What `cvlab plot` reads from a run folder: config, metrics, summary, checkpoint weights.

Everything here works from the files the trainers leave behind (config.yaml, metrics.csv,
summary.json, a checkpoint); nothing is re-trained or re-computed from data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cvlab.runs import read_summary

FINAL_LOSS_WINDOW = 100  # the course's "final training loss": mean of the last 100 iterations


@dataclass
class RunRecord:
    """One run folder as read from disk.

    `config` is the resolved config.yaml (nested dict), `flat` the same with dotted keys,
    `metrics` the metrics.csv frame (empty when the run wrote none), `summary` summary.json.
    """

    path: Path
    config: dict[str, Any]
    flat: dict[str, Any]
    metrics: pd.DataFrame
    summary: dict[str, Any]
    label: str = ""
    stats: dict[str, float] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """A config value by dotted key (`model.weight_scale`)."""
        return self.flat.get(key, default)

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "unknown"))

    @property
    def model_type(self) -> str:
        return str(self.get("model.type") or "")

    @property
    def family(self) -> str:
        """numpy | torch | captioning (from the model type in config.yaml)."""
        model_type = self.model_type
        if model_type.startswith("torch") or model_type == "challenge":
            return "torch"
        if "caption" in model_type or self.get("model.cell_type") is not None:
            return "captioning"
        return "numpy"

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


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to one dict with dotted keys; lists become tuples (hashable)."""
    flat: dict[str, Any] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    if isinstance(tree, list):
        tree = tuple(tree)
    flat[prefix[:-1]] = tree
    return flat


def read_config(run_dir: Path) -> dict[str, Any]:
    """config.yaml as a dict ({} when missing or unreadable)."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def read_metrics_frame(run_dir: Path) -> pd.DataFrame:
    """metrics.csv with float columns (empty cells NaN).

    A cell written as `nan` (a diverged loss) is NaN too, but unlike an empty cell it counts
    as logged: `frame.attrs["logged"][column]` marks the rows where the column was written.
    """
    path = Path(run_dir) / "metrics.csv"
    try:
        text = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return pd.DataFrame()
    frame = pd.DataFrame(index=text.index)
    logged = {}
    for name in text.columns:
        cells = text[name].str.strip()
        logged[name] = (cells != "").to_numpy()
        frame[name] = pd.to_numeric(cells.replace("", None), errors="coerce").astype(float)
    frame.attrs["logged"] = logged
    return frame


def load_run(run_dir: Path) -> RunRecord:
    """Read one run folder (missing files give empty parts, never an exception)."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    record = RunRecord(
        path=run_dir,
        config=config,
        flat=flatten(config),
        metrics=read_metrics_frame(run_dir),
        summary=read_summary(run_dir),
    )
    record.stats = run_stats(record.metrics)
    return record


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


def final_loss(frame: pd.DataFrame, window: int = FINAL_LOSS_WINDOW) -> float:
    """Mean training loss over the last `window` iterations (inf if any was not finite)."""
    _, losses = loss_series(frame)
    if losses.size == 0:
        return math.nan
    tail = losses[-window:]
    if not np.all(np.isfinite(tail)):
        return math.inf
    return float(tail.mean())


def _best(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else math.nan


def run_stats(frame: pd.DataFrame) -> dict[str, float]:
    """The key numbers of one run, computed from its metrics.csv alone."""
    iterations, losses = loss_series(frame)
    _, train_acc = accuracy_series(frame, "train_acc")
    _, val_acc = accuracy_series(frame, "val_acc")
    stats = {
        "iterations": float(iterations.max()) if iterations.size else math.nan,
        "final_loss": final_loss(frame),
        "best_train_acc": _best(train_acc),
        "best_val_acc": _best(val_acc),
        "last_train_acc": float(train_acc[-1]) if train_acc.size else math.nan,
        "last_val_acc": float(val_acc[-1]) if val_acc.size else math.nan,
    }
    if "elapsed_s" in frame.columns:
        elapsed = frame["elapsed_s"].to_numpy(dtype=float)
        elapsed = elapsed[np.isfinite(elapsed)]
        stats["elapsed_s"] = float(elapsed.max()) if elapsed.size else math.nan
    return stats


# --- checkpoints -------------------------------------------------------------------------------

# numpy runs keep params.npz (W1, b1, ...) beside checkpoint.pkl; torch runs a .pt file
CHECKPOINT_PATTERNS = ("params.npz", "checkpoint*.npz", "*.npz", "checkpoint*.pkl", "*.pkl",
                       "checkpoint*.pt", "*.pt", "*.pth")


def find_checkpoint(run_dir: Path) -> Path | None:
    """The run's checkpoint file (in the folder or a checkpoints/ subfolder), newest first."""
    for folder in (Path(run_dir), Path(run_dir) / "checkpoints"):
        if not folder.is_dir():
            continue
        for pattern in CHECKPOINT_PATTERNS:
            found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
            if found:
                return found[0]
    return None


def _search(tree: Any, key: str, depth: int = 0) -> Any:
    """Value of `key` in nested dicts / objects with a `params` dict (depth-first)."""
    if depth > 4:
        return None
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for preferred in ("params", "best_params", "model", "model_params", "state_dict"):
            if preferred in tree:
                found = _search(tree[preferred], key, depth + 1)
                if found is not None:
                    return found
        for value in tree.values():
            found = _search(value, key, depth + 1)
            if found is not None:
                return found
    elif hasattr(tree, "params"):
        return _search(tree.params, key, depth + 1)
    return None


def first_layer_filters(run_dir: Path) -> np.ndarray | None:
    """First-layer conv weights (F, C, HH, WW) from the run's checkpoint, or None.

    Numpy checkpoints keep `W1` (a .npz with a `W1` or `params/W1`-style key, or a pickled
    dict holding a params dict); torch checkpoints give their first 4-D weight tensor.
    """
    path = find_checkpoint(run_dir)
    if path is None:
        return None
    weights: Any = None
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            names = [n for n in archive.files if n == "W1" or n.split("/")[-1].split(".")[-1]
                     == "W1"]
            if names:
                weights = archive[sorted(names, key=len)[0]]
    elif path.suffix == ".pkl":
        import pickle

        with path.open("rb") as f:
            weights = _search(pickle.load(f), "W1")
    else:
        weights = _torch_first_conv(path)
    if weights is None:
        return None
    weights = np.asarray(weights, dtype=float)
    return weights if weights.ndim == 4 else None


def _torch_first_conv(path: Path) -> np.ndarray | None:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a plain state dict: nothing to draw
        return None
    for preferred in ("model", "model_state", "state_dict", "params"):
        if isinstance(state, dict) and isinstance(state.get(preferred), dict):
            state = state[preferred]
            break
    if isinstance(state, dict):
        for value in state.values():
            if hasattr(value, "ndim") and value.ndim == 4:
                return value.detach().float().numpy()
    elif isinstance(state, (list, tuple)):
        for value in state:
            if hasattr(value, "ndim") and value.ndim == 4:
                return value.detach().float().numpy()
    return None
