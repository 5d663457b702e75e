"""`logger=tensorboard`: the run's metrics as TensorBoard event files in its folder.

    sink = TensorBoardSink(run_dir / "tensorboard")
    sink.log(row)                     # every metrics.csv row: loss, lr, accuracies, BLEU
    sink.add_filters(weights)         # first-layer conv filters as an image
    sink.add_captions(samples)        # generated vs reference captions as text
    sink.close()

`tensorboard --logdir outputs/train` then shows every run. Scalars are tagged by what they are
(loss/train, lr, accuracy/train, accuracy/val, bleu/val_bleu4, ...) at the update's iteration.
metrics.csv is written either way: it is the record plot, eval and resume read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.images import filter_grid

TAGS = {"loss": "loss/train", "lr": "lr", "train_acc": "accuracy/train",
        "val_acc": "accuracy/val", "captions_per_s": "speed/captions_per_s"}
SKIPPED = ("iteration", "epoch", "elapsed_s")


class TensorBoardSink:
    """Writes metrics rows (and images, text) as TensorBoard summaries under `log_dir`."""

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log(self, row: dict[str, Any]) -> None:
        step = int(row["iteration"])
        for key, value in row.items():
            if key in SKIPPED or value is None or isinstance(value, bool):
                continue
            value = float(value)
            if math.isfinite(value):
                self.writer.add_scalar(tag_of(key), value, step)

    def add_filters(self, weights: np.ndarray, step: int) -> None:
        """First-layer conv filters (F, C, HH, WW) as one tiled image."""
        if weights.shape[1] != 3:
            weights = weights.reshape(-1, 1, *weights.shape[2:])
        grid = filter_grid(weights, upper=1.0)
        self.writer.add_image("filters/first_layer", grid, step, dataformats="HWC")

    def add_captions(self, samples: dict[str, list[dict[str, Any]]], step: int) -> None:
        """Generated and reference captions of a few images per split, as markdown tables."""
        for split, rows in samples.items():
            lines = ["| image | generated | references |", "|---|---|---|"]
            for row in rows:
                references = " / ".join(row["references"])
                lines.append(f"| {row['image_index']} | {row['generated']} | {references} |")
            self.writer.add_text(f"captions/{split}", "\n".join(lines), step)

    def add_hparams(self, settings: dict[str, Any], metrics: dict[str, Any]) -> None:
        """The run's settings and its final metrics as one HParams row (TensorBoard's HParams
        tab compares runs across sweeps), written into this run's own log folder."""
        hparams = {key: value for key, value in settings.items()
                   if isinstance(value, (bool, int, float, str))}
        finals = {f"final/{key}": float(value) for key, value in metrics.items()
                  if isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(float(value))}
        self.writer.add_hparams(hparams, finals, run_name=".")

    def close(self) -> None:
        self.writer.close()


def tag_of(key: str) -> str:
    """The TensorBoard tag of a metrics column."""
    if key in TAGS:
        return TAGS[key]
    if "bleu" in key:
        return f"bleu/{key}"
    return f"metrics/{key}"
