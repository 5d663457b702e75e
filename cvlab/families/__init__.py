"""Training families: how each kind of model trains, as a plug-in of the run core.

A family is one module of this package holding one object that fulfils `Family`; a model
type's spec names that object (cvlab.models.registry: `ModelSpec(family=NUMPY, ...)`), and
every command asks the spec for it: `cvlab train` (cvlab.run.train), resume, `cvlab eval` and
`cvlab plot`. The config layer reads a family's declared data (the datasets it trains on, the
fields it ignores) and calls its `check` before any work.

    NUMPY       numpy models, trained by the course's Solver        (families/numpy.py)
    TORCH       PyTorch classifiers on the training device         (families/torch.py)
    CAPTIONING  the CaptioningRNN with BLEU evaluations            (families/captioning.py)
    DEMO        the conv demo: filters applied once, no training   (families/demo.py)

A family module imports its training code when a run is prepared, not when it is imported:
composing a config (which reads the families' declarations) loads no training code and no
torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cvlab.config.train import ModelConfig, TrainConfig
from cvlab.train.task import Task

Announce = Callable[[str], None]  # where a family's one-line notes go (the run's log)
Build = Callable[..., Any]  # a model type's builder; its arguments are the family's to choose


@dataclass
class Prepared:
    """A run ready to train: the loop's task and what the summary says about it."""

    task: Task
    dataset: str  # the dataset actually used (auto resolved)
    dataset_source: str | None = None  # where it was read from
    device: str | None = None  # where it runs, as the summary records it
    settings: dict[str, Any] = field(default_factory=dict)  # more values runs are grouped by
    details: dict[str, Any] = field(default_factory=dict)  # summary.json's details (a cache error)
    context: contextlib.AbstractContextManager = field(default_factory=contextlib.nullcontext)


@dataclass
class Outcome:
    """What a family that does not train (`trains=False`) produced."""

    metrics: dict[str, Any]
    files: list[str]  # relative to the run folder


class Family(Protocol):
    """The contract of a training family. Members marked "default" are optional: a family class
    that subclasses Family inherits them.

    name           recorded as the run's `family` (summary.json); plot and eval read it
    words          how messages name its models ("numpy models")
    datasets       the dataset names it trains on, besides `auto`
    unused_fields  TrainConfig keys (dotted) it does not use: a config that sets one to
                   anything but its default is refused (a value that would be ignored)
    eval_splits    default ("val", "test"): the splits `cvlab eval` may score
    trains         default True; False: the family produces its results at once (`produce`)
                   and has no loop, checkpoints or weights
    """

    name: str
    words: str
    datasets: tuple[str, ...]
    unused_fields: tuple[str, ...]
    eval_splits: tuple[str, ...] = ("val", "test")
    trains: bool = True

    def check(self, cfg: TrainConfig) -> None:
        """Default: nothing. Rules of this family on a composed config (ConfigError, one
        line); the config layer calls it for every job before anything runs."""

    def preflight(self, cfg: TrainConfig, model: ModelConfig) -> None:
        """Default: nothing. Checks of the machine a run needs (a GPU, readable files), made
        before the run folder is created or any data is loaded (UserError, one line)."""

    def prepare(self, cfg: TrainConfig, model: ModelConfig, build: Build,
                announce: Announce) -> Prepared:
        """Load the data, build the model (`build`, the model type's builder) and its task.
        `model` is the model config the run trains (a baseline run's has no normalization)."""
        ...

    def produce(self, model: ModelConfig, build: Build, run_dir: Path) -> Outcome:
        """Default: not available. The results of a family that does not train, written into
        run_dir."""
        raise NotImplementedError(f"the {self.name} family trains; it produces nothing at once")
