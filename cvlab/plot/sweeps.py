"""Figures of the course's sweeps, drawn from each job's metrics.csv.

- weight scale: best val accuracy, best train accuracy and final training loss (the mean over
  the run's last updates, RunSummary.final_loss_mean) against the weight scale (log x axis),
  one line per model (normalized vs baseline);
- batch size: train and val accuracy per epoch, one line per batch size plus the baseline;
- dropout: train and val accuracy per epoch, one line per keep ratio.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from cvlab.plot.curves import dataset_note, plot_accuracy_per_epoch, typical_start_loss
from cvlab.plot.detect import Target, run_label
from cvlab.plot.records import RunRecord
from cvlab.plot.style import figure, run_styles, save

PANELS = (
    ("best_val_acc", "Best val accuracy"),
    ("best_train_acc", "Best train accuracy"),
    ("final_loss_mean", "Final training loss"),
)
STUCK_FACTOR = 1.5  # a final loss above 1.5 x the typical starting loss: the run did not learn


def weight_scale_series(target: Target) -> dict[str, list[RunRecord]]:
    """Runs grouped into lines (by every differing key but the weight scale and the seed),
    sorted by scale; repeats of one scale (seeds) are averaged when plotted."""
    keys = [k for k in target.varying if k not in ("model.weight_scale", "seed")]
    series: dict[str, list[RunRecord]] = defaultdict(list)
    for run in target.runs:
        if run.get("model.weight_scale") is None:
            continue
        name = run_label(run, keys) if keys else (run.normalization or "model")
        if name == "none":
            name = "baseline"
        series[name].append(run)
    for runs in series.values():
        runs.sort(key=lambda r: float(r.get("model.weight_scale")))
    # normalized models first, baseline last (drawn on top, dashed black)
    return dict(sorted(series.items(), key=lambda item: item[0].startswith("baseline")))


def plot_weight_scale(target: Target, out_path: Path) -> Path:
    """The course's three-panel weight-initialization figure (semilogx)."""
    fig, axes = figure(3, panel=(5.0, 4.0))
    series = weight_scale_series(target)
    loss_cap = STUCK_FACTOR * typical_start_loss(target.runs)
    for k, ((name, runs), style) in enumerate(zip(series.items(), run_styles(list(series)))):
        scales, groups = _by_scale(runs)
        for ax, (key, _) in zip(axes, PANELS):
            values = _means(groups, key)
            shown = np.isfinite(values)
            if key == "final_loss_mean":
                # diverged runs (and losses far above the start) are marked x along the top of
                # the panel, one row per line so that no marker hides another
                off = _diverged(groups) | ~shown | (values > loss_cap)
                shown &= ~off
                if off.any():
                    ax.plot(scales[off], [0.96 - 0.05 * k] * int(off.sum()), linestyle="none",
                            marker="x", markersize=8, color=style["color"],
                            transform=ax.get_xaxis_transform(),
                            label=f"{name}: diverged or > {loss_cap:.3g}")
            ax.semilogx(scales[shown], values[shown], marker="o", markersize=4,
                        label=name, **style)
    for ax, (_, ylabel) in zip(axes, PANELS):
        ax.set(title=f"{ylabel} vs weight scale", xlabel="Weight initialization scale",
               ylabel=ylabel)
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.suptitle(sweep_title(target, "Weight-scale sweep") + dataset_note(target.runs))
    return save(fig, out_path)


def weight_scale_notes(target: Target) -> list[str]:
    """One line per model: its best val accuracy and where, and how many runs diverged or
    did not learn; then what the loss threshold is."""
    notes = []
    start = typical_start_loss(target.runs)
    loss_cap = STUCK_FACTOR * start
    for name, runs in weight_scale_series(target).items():
        scales, groups = _by_scale(runs)
        best_val, losses = _means(groups, "best_val_acc"), _means(groups, "final_loss_mean")
        if not np.isfinite(best_val).any():
            continue
        top = int(np.nanargmax(best_val))
        diverged = _diverged(groups)
        stuck = ~diverged & (~np.isfinite(losses) | (losses > loss_cap))
        notes.append(f"{name}: best val acc {best_val[top]:.3f} at weight scale "
                     f"{scales[top]:.2e}; of {len(scales)} scales, {int(diverged.sum())} "
                     f"diverged and {int(stuck.sum())} ended with a loss above {loss_cap:.3g}")
    if notes and np.isfinite(start):
        notes.append(f"{loss_cap:.3g} = {STUCK_FACTOR} x the typical starting loss {start:.3g} "
                     "(the median of the runs' first 10 losses; ln 10 = 2.30 is chance for 10 "
                     "classes): a run ending above it did not learn. Both kinds are drawn as x "
                     "along the top of the loss panel.")
    return notes


def _by_scale(runs: list[RunRecord]) -> tuple[np.ndarray, list[list[RunRecord]]]:
    """(the distinct weight scales, sorted; the runs at each)."""
    groups: dict[float, list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[float(run.get("model.weight_scale"))].append(run)
    scales = sorted(groups)
    return np.array(scales), [groups[s] for s in scales]


def _means(groups: list[list[RunRecord]], key: str) -> np.ndarray:
    """The mean of `key` over each group's runs; inf stays inf."""
    with np.errstate(invalid="ignore"):
        return np.array([np.mean([run.metric(key) for run in group]) for group in groups],
                        dtype=float)


def _diverged(groups: list[list[RunRecord]]) -> np.ndarray:
    """Whether any run of each group diverged."""
    return np.array([any(run.status == "diverged" for run in group) for group in groups],
                    dtype=bool)


def plot_batch_size(target: Target, out_path: Path) -> Path:
    """Train / val accuracy per epoch, one line per batch size, baseline(s) dashed."""
    def order(run: RunRecord) -> tuple:
        return (run.normalization != "none", int(run.get("batch_size") or 0))

    runs = sorted(target.plotted_runs, key=order)
    return plot_accuracy_per_epoch(runs, out_path, sweep_title(target, "Batch-size sweep"))


def plot_dropout(target: Target, out_path: Path) -> Path:
    """Train / val accuracy per epoch with and without dropout."""
    runs = sorted(target.plotted_runs,
                  key=lambda r: -float(r.get("model.dropout_keep_ratio") or 1.0))
    for run in runs:
        keep = float(run.get("model.dropout_keep_ratio") or 1.0)
        run.label = f"keep {keep:.2f}" + (" (no dropout)" if keep == 1.0 else "")
    return plot_accuracy_per_epoch(runs, out_path, sweep_title(target, "Dropout"))


def sweep_title(target: Target, default: str) -> str:
    experiments = sorted({r.experiment for r in target.runs if r.experiment})
    models = sorted({r.model_type for r in target.runs if r.model_type})
    normalizations = sorted({r.normalization for r in target.runs
                             if r.normalization and r.normalization != "none"})
    named = [name for name in experiments if name.replace("_", "-") not in default.lower()]
    parts = [default + (f" ({', '.join(named)})" if named else "")]
    if models:
        parts.append(" / ".join(models) + (f" ({', '.join(normalizations)})"
                                           if normalizations else ""))
    return ": ".join(parts)
