"""Figures of a captioning run: the loss curve (with BLEU per epoch) and a caption gallery.

`plot_captioning_run(run_dir, out_dir)` reads metrics.csv and samples.json (written by
cvlab.train.caption_solver at the end of training) and draws:
    caption_loss.png      training loss per iteration; val BLEU-1/BLEU-4 per evaluated epoch
    caption_gallery.png   train and val images with the generated caption (bold) and the
                          reference captions; without a local image (COCO offline) the panel
                          shows the image URL instead
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.data.constants import caption_words
from cvlab.plot.style import figure, pyplot, save
from cvlab.records.files import RecordError
from cvlab.records.reader import RunFolder

MAX_PER_SPLIT = 6


def _metrics(run_dir: Path) -> Any:
    """The run's metrics.csv, through the one reader (its intact rows)."""
    return RunFolder(run_dir).metrics()


def plot_loss(run_dir: Path, out_dir: Path) -> Path | None:
    frame = _metrics(run_dir)
    if frame.empty or "loss" not in frame or frame["loss"].dropna().empty:
        return None
    has_bleu = "val_bleu4" in frame and not frame["val_bleu4"].dropna().empty
    fig, axes = figure(2 if has_bleu else 1)
    losses = frame.dropna(subset=["loss"])
    ax = axes[0]
    ax.plot(losses["iteration"], losses["loss"], lw=0.8, alpha=0.6, label="loss")
    if len(losses) >= 20:
        window = max(len(losses) // 50, 5)
        smooth = np.convolve(losses["loss"], np.ones(window) / window, mode="valid")
        ax.plot(losses["iteration"].iloc[window - 1:], smooth, lw=1.5, label="moving mean")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    ax.set_title("captioning loss")
    ax.legend()
    if has_bleu:
        evals = frame.dropna(subset=["val_bleu4"])
        ax = axes[1]
        for column, label in (("val_bleu1", "val BLEU-1"), ("val_bleu4", "val BLEU-4"),
                              ("train_bleu4", "train BLEU-4"),
                              ("val_course_bleu", "val course unigram BLEU")):
            if column in evals and not evals[column].dropna().empty:
                ax.plot(evals["epoch"], evals[column], marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("BLEU")
        ax.set_ylim(0, 1)
        ax.set_title("BLEU (greedy captions)")
        ax.legend()
    return save(fig, out_dir / "caption_loss.png")


def _panel(ax: Any, sample: dict[str, Any], split: str) -> None:
    image = sample.get("image")
    wrap = 32
    if image and Path(image).is_file():
        from PIL import Image

        with Image.open(image) as im:
            ax.imshow(np.asarray(im.convert("RGB")))
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.axis("off")
        url = sample.get("url", "")
        ax.text(0.5, 0.55, "image not stored locally:\n" + "\n".join(textwrap.wrap(url, wrap)),
                ha="center", va="center", fontsize=7, color="dimgray", transform=ax.transAxes)
    generated = caption_words(sample.get("generated", ""))
    refs = [caption_words(r) for r in sample.get("references", [])][:3]
    lines = [f"{split}: " + "\n".join(textwrap.wrap(generated, wrap))]
    lines += ["\n".join(textwrap.wrap("ref: " + r, wrap)) for r in refs]
    ax.set_title(lines[0], fontsize=8, fontweight="bold", loc="left")
    ax.text(0.0, -0.04, "\n".join(lines[1:]), fontsize=7, va="top", ha="left",
            transform=ax.transAxes)


def plot_gallery(run_dir: Path, out_dir: Path) -> Path | None:
    try:
        samples = RunFolder(run_dir).samples()
    except RecordError:
        return None
    splits = {k: v[:MAX_PER_SPLIT] for k, v in samples.items() if v}
    if not splits:
        return None
    ncols = max(len(v) for v in splits.values())
    fig, axes = figure(ncols, len(splits), panel=(2.6, 3.6))
    for row, (split, items) in enumerate(splits.items()):
        for col in range(ncols):
            ax = axes[row * ncols + col]
            if col < len(items):
                _panel(ax, items[col], split)
            else:
                ax.axis("off")
    cell = samples.get("cell_type", "")
    fig.suptitle(f"{cell} captions on {samples.get('dataset', '?')}: generated (bold) and "
                 "references", fontsize=10)
    pyplot().subplots_adjust(hspace=1.2)
    return save(fig, out_dir / "caption_gallery.png")


def plot_captioning_run(run_dir: Path, out_dir: Path) -> list[Path]:
    """Draw the loss curve and the caption gallery of a captioning run; the files written."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    written = [plot_loss(run_dir, out_dir), plot_gallery(run_dir, out_dir)]
    return [p for p in written if p is not None]
