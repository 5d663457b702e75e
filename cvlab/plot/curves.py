"""Training curves: loss per iteration, train / val accuracy per epoch (numpy and torch runs).

One run: a loss panel and an accuracy panel (train and val), plus the learning rate when it
changes during the run. Several runs (baseline vs normalized, a small sweep): three panels,
training loss, training accuracy and validation accuracy, one line per run, as in the
course's batch-normalization notebook.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvlab.plot.records import (
    RunRecord,
    accuracy_series,
    column,
    iterations_per_epoch,
    loss_series,
)
from cvlab.plot.style import clip_loss_axis, figure, run_styles, save, smooth, smoothing_window


def _plot_loss(ax, run: RunRecord, style: dict, label: str, per_epoch: bool = False) -> None:
    iterations, losses = loss_series(run.metrics)
    if per_epoch:
        iterations = iterations / (iterations_per_epoch(run.metrics) or 1.0)
    losses = np.where(np.isfinite(losses), losses, np.nan)
    window = smoothing_window(losses.size)
    if window == 1:
        ax.plot(iterations, losses, marker="o", markersize=2, linewidth=0.8, label=label,
                **style)
    else:
        ax.plot(iterations, losses, linewidth=0.5, alpha=0.25, color=style["color"])
        ax.plot(iterations, smooth(losses, window), linewidth=1.4, label=label, **style)


def start_loss(run: RunRecord) -> float:
    """Median of the first 10 logged losses (the typical starting loss)."""
    _, losses = loss_series(run.metrics)
    losses = losses[:10][np.isfinite(losses[:10])]
    return float(np.median(losses)) if losses.size else float("nan")


def typical_start_loss(runs: list[RunRecord]) -> float:
    """The lower median of the runs' starting losses (robust to a few exploding runs)."""
    starts = sorted(v for v in (start_loss(run) for run in runs) if np.isfinite(v))
    return starts[(len(starts) - 1) // 2] if starts else float("nan")


def _plot_accuracy(ax, run: RunRecord, name: str, style: dict, label: str) -> bool:
    from matplotlib.ticker import MaxNLocator

    epochs, accuracy = accuracy_series(run.metrics, name)
    if accuracy.size == 0:
        return False
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.plot(epochs, accuracy, marker="o", markersize=3, linewidth=1.2, label=label, **style)
    return True


def dataset_note(runs: list[RunRecord]) -> str:
    names = sorted({str(r.summary.dataset or r.get("dataset.name") or "") for r in runs}
                   - {""})
    return f" [{', '.join(names)}]" if names else ""


def plot_run_curves(run: RunRecord, out_path: Path, title: str | None = None) -> Path:
    """Loss and accuracy (train and val) of one run; lr too when it is scheduled."""
    _, lrs = column(run.metrics, "lr", "iteration")
    lrs = lrs[np.isfinite(lrs)]
    show_lr = lrs.size > 1 and not np.allclose(lrs, lrs[0])
    fig, axes = figure(3 if show_lr else 2)
    loss_ax, acc_ax = axes[0], axes[1]
    _plot_loss(loss_ax, run, {"color": "tab:blue", "linestyle": "-"}, "training loss")
    loss_ax.set(title="Training loss", xlabel="Iteration", ylabel="Loss")
    clip_loss_axis(loss_ax, typical_start_loss([run]))
    drew = _plot_accuracy(acc_ax, run, "train_acc", {"color": "tab:blue", "linestyle": "-"},
                          "train")
    drew |= _plot_accuracy(acc_ax, run, "val_acc", {"color": "tab:orange", "linestyle": "-"},
                           "val")
    acc_ax.set(title="Accuracy", xlabel="Epoch", ylabel="Accuracy")
    if not drew:  # captioning runs log BLEU scores instead of accuracies
        for index, name in enumerate(c for c in run.metrics.columns if "bleu" in c):
            drew |= _plot_accuracy(acc_ax, run, name, {"color": f"C{index}", "linestyle": "-"},
                                   name)
        if drew:
            acc_ax.set(title="BLEU", ylabel="BLEU")
    if drew:
        acc_ax.legend(loc="best")
    else:
        acc_ax.text(0.5, 0.5, "no accuracy logged", ha="center", va="center",
                    transform=acc_ax.transAxes)
    if show_lr:
        iterations, lr_values = column(run.metrics, "lr", "iteration")
        axes[2].plot(iterations, lr_values, color="tab:green")
        axes[2].set(title="Learning rate", xlabel="Iteration", ylabel="lr")
    status = f" ({run.status})" if run.status not in ("completed", "unknown") else ""
    fig.suptitle((title or run.label) + status + dataset_note([run]))
    return save(fig, out_path)


def plot_compare_curves(runs: list[RunRecord], out_path: Path, title: str) -> Path:
    """Training loss, train accuracy and val accuracy of several runs, one line per run."""
    fig, axes = figure(3)
    # runs with different epoch lengths (batch sizes) are compared per epoch, not per iteration
    per_epoch = len({iterations_per_epoch(run.metrics) for run in runs}) > 1 and all(
        iterations_per_epoch(run.metrics) for run in runs)
    for run, style in zip(runs, run_styles([run.label for run in runs])):
        label = run.label + ("" if run.status in ("completed", "unknown") else f" ({run.status})")
        _plot_loss(axes[0], run, style, label, per_epoch)
        _plot_accuracy(axes[1], run, "train_acc", style, label)
        _plot_accuracy(axes[2], run, "val_acc", style, label)
    axes[0].set(title="Training loss", xlabel="Epoch" if per_epoch else "Iteration",
                ylabel="Loss")
    clip_loss_axis(axes[0], typical_start_loss(runs))
    axes[1].set(title="Training accuracy", xlabel="Epoch", ylabel="Accuracy")
    axes[2].set(title="Validation accuracy", xlabel="Epoch", ylabel="Accuracy")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.suptitle(title + dataset_note(runs))
    return save(fig, out_path)


def plot_accuracy_per_epoch(runs: list[RunRecord], out_path: Path, title: str) -> Path:
    """Train and val accuracy per epoch, one line per run (batch-size and dropout figures)."""
    fig, axes = figure(2)
    for run, style in zip(runs, run_styles([run.label for run in runs])):
        _plot_accuracy(axes[0], run, "train_acc", style, run.label)
        _plot_accuracy(axes[1], run, "val_acc", style, run.label)
    axes[0].set(title="Training accuracy", xlabel="Epoch", ylabel="Accuracy")
    axes[1].set(title="Validation accuracy", xlabel="Epoch", ylabel="Accuracy")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="best")
    fig.suptitle(title + dataset_note(runs))
    return save(fig, out_path)
