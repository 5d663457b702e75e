"""Shared look of cvlab figures: Agg backend, colors per run, saving, smoothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window (works without a display)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 110
BASELINE_STYLE = {"color": "black", "linestyle": "--"}


def pyplot() -> Any:
    """matplotlib.pyplot with the Agg backend selected."""
    return plt


def figure(ncols: int, nrows: int = 1, panel: tuple[float, float] = (5.0, 3.8)) -> tuple:
    """A figure with `nrows x ncols` panels of `panel` inches each; axes as a flat list."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows),
                             squeeze=False)
    return fig, list(axes.flat)


def save(fig: Any, path: Path) -> Path:
    """Write `fig` as PNG to `path` (atomically, folders created) and close it."""
    from cvlab.records.files import atomic_write

    try:
        fig.tight_layout()
        atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=DPI), binary=True)
    finally:
        plt.close(fig)
    return Path(path)


def run_styles(labels: list[str]) -> list[dict[str, Any]]:
    """Line style per run: baselines dashed (black when there is one), the others solid,
    every line its own tab10 color otherwise."""
    cmap = plt.get_cmap("tab10")
    baselines = [label.startswith("baseline") for label in labels]
    styles = []
    for index, is_baseline in enumerate(baselines):
        if is_baseline and sum(baselines) == 1:
            styles.append(dict(BASELINE_STYLE))
        else:
            styles.append({"color": cmap(index % 10), "linestyle": "--" if is_baseline else "-"})
    return styles


def clip_loss_axis(ax: Any, start: float) -> None:
    """Keep an exploding loss from flattening the other curves: when some curve goes above
    10x the typical starting loss `start`, cap the y axis at 3x it."""
    if not np.isfinite(start) or start <= 0:
        return
    low, high = ax.get_ylim()
    if high > 10 * start:
        ax.set_ylim(max(low, 0.0), 3 * start)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (same length; the first points average what exists)."""
    if window <= 1 or values.size == 0:
        return values
    finite = np.where(np.isfinite(values), values, np.nan)
    cumsum = np.nancumsum(finite)
    counts = np.cumsum(np.isfinite(finite))
    lo = np.arange(values.size) - window
    valid = lo >= 0
    total = cumsum - np.where(valid, cumsum[np.maximum(lo, 0)], 0.0)
    count = counts - np.where(valid, counts[np.maximum(lo, 0)], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def smoothing_window(n_points: int) -> int:
    """Moving-average window for a loss curve of n_points (1 = raw points only)."""
    return 1 if n_points <= 200 else max(int(n_points // 50), 5)
