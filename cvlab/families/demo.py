"""The demo family: the course's conv demo, two filters applied once to two images; nothing
trains, no data set is read."""

from __future__ import annotations

from pathlib import Path

from cvlab.config.train import ModelConfig, TrainConfig
from cvlab.families import Announce, Build, Family, Outcome, Prepared


class DemoFamily(Family):
    name = "demo"
    words = "the conv demo"
    datasets = ()
    unused_fields = ()
    eval_splits = ()
    trains = False

    def prepare(self, cfg: TrainConfig, model: ModelConfig, build: Build,
                announce: Announce) -> Prepared:
        raise NotImplementedError("the conv demo does not train; see produce")

    def produce(self, model: ModelConfig, build: Build, run_dir: Path) -> Outcome:
        """`build(model, run_dir)` writes the filtered images; their metrics and files."""
        out = build(model, run_dir)
        return Outcome(metrics=out["metrics"], files=out["files"])


DEMO = DemoFamily()
