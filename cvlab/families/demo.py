"""The demo family: the course's conv demo, two filters applied once to two images; nothing
trains, no data set is read.

The image files a run names (`model.images`) are checked before its folder is created: each
must exist and decode as an image (Pillow, as the demo reads them), so that a wrong path, an
unreadable file or a file that is not an image is one line and leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

from cvlab.config.train import ModelConfig, TrainConfig
from cvlab.families import Announce, Build, Family, Outcome, Prepared
from cvlab.images import read_image


class DemoFamily(Family):
    name = "demo"
    words = "the conv demo"
    datasets = ()
    unused_fields = ()
    eval_splits = ()
    trains = False

    def preflight(self, cfg: TrainConfig, model: ModelConfig) -> None:
        """Every image file of the model exists and decodes as an image."""
        for name in model.image_files():
            read_image(name)

    def prepare(self, cfg: TrainConfig, model: ModelConfig, build: Build,
                announce: Announce) -> Prepared:
        raise NotImplementedError("the conv demo does not train; see produce")

    def produce(self, model: ModelConfig, build: Build, run_dir: Path) -> Outcome:
        """`build(model, run_dir)` writes the filtered images; their metrics and files."""
        out = build(model, run_dir)
        return Outcome(metrics=out["metrics"], files=out["files"])


DEMO = DemoFamily()
