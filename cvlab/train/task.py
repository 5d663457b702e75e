"""The contract between the training loop (cvlab.train.core) and what it trains.

A Task is one model on its data with its optimizer: the course's Solver (numpy), the PyTorch
trainer and the captioning solver each provide one. The loop calls the members below and owns
everything they share: the loss history, the history, best and last value of each metric, the
best weights, the timing, checkpoints, the divergence rule and the records. A task provides
steps, evaluations and its state, nothing else.

Members marked "default" are optional: a task class that subclasses Task inherits them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

# A model's whole state as a tree of dicts, lists, numbers and arrays (or tensors), in the
# form cvlab.records.state stores: the numpy models' {"params": ..., "buffers": ...}, a torch
# state dict, the captioner's params.
Weights = dict[str, Any]


def untrained_softmax_loss(num_classes: int) -> float | None:
    """ln C: the cross-entropy of a C-class classifier that gives every class the same
    probability (what a model that knows nothing scores); None for fewer than two classes."""
    return math.log(num_classes) if num_classes >= 2 else None


class Task(Protocol):
    """What the loop trains. Counters count completed updates and epochs.

    iteration, epoch        updates and epochs done so far
    num_epochs              epochs to train
    iterations_per_epoch    updates in one epoch
    examples_per_update     training examples in one update (throughput = updates x this / time)
    throughput_name         the summary's name of that throughput (images_per_s, captions_per_s)
    metric_columns          the metrics evaluate() returns, in metrics.csv's column order
    best_metric             default None: the metric whose best value selects the best weights
                            (model_best.npz); None keeps no best weights
    restores_best           default False: put the best weights back into the model when the
                            loop ends (the course's Solver restores its best params)
    best_of                 default (): metrics whose best value the summary reports (best_<m>)
    final_prefix            default "final_": the summary reports each metric's last value as
                            <final_prefix><metric>
    flush_every             default 1: updates whose losses may be read together (a GPU task
                            reads them in batches, so that the device is not synchronized each
                            step)
    untrained_loss          default None: the loss of a model that knows nothing (ln C for a
                            C-class softmax classifier: untrained_softmax_loss); the divergence
                            rule stops a run whose loss exceeds 1000 x the smaller of it and the
                            first loss (cvlab.train.core). None: the rule uses the first loss
                            only
    """

    iteration: int
    epoch: int
    num_epochs: int
    iterations_per_epoch: int
    examples_per_update: int
    throughput_name: str = "images_per_s"
    metric_columns: tuple[str, ...] = ()
    best_metric: str | None = None
    restores_best: bool = False
    best_of: tuple[str, ...] = ()
    final_prefix: str = "final_"
    flush_every: int = 1
    untrained_loss: float | None = None

    def step(self) -> Any:
        """One update; its loss (a float, or a value to_floats reads)."""
        ...

    def to_floats(self, losses: list[Any]) -> list[float]:
        """Default: float() of each. The losses of step() as floats (read together)."""
        return [float(v) for v in losses]

    def learning_rate(self) -> float | None:
        """The learning rate the next update uses (None: the task has none to report)."""
        ...

    def end_epoch(self) -> None:
        """After the epoch's last update: epoch += 1, the epoch's learning-rate decay."""
        ...

    def should_evaluate(self, epoch_end: bool) -> bool:
        """Whether to evaluate after this update (the loop also does after the last one)."""
        ...

    def evaluate(self) -> dict[str, float]:
        """Default: nothing. The metric_columns' values now."""
        return {}

    def describe(self, metrics: dict[str, float]) -> str:
        """Default: "". The evaluation's line in the log (the course's format)."""
        return ""

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly from here (a cvlab.records.state tree)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore state(); ValueError / KeyError / RuntimeError when it does not fit."""
        ...

    def weights(self) -> Weights:
        """A copy of the model's whole state (params and buffers), as it is now."""
        ...

    def load_weights(self, weights: Weights) -> None:
        """Put weights() back into the model; ValueError / KeyError / RuntimeError when they do
        not fit it."""
        ...

    def restore_best(self, weights: Weights) -> None:
        """Default: load_weights. What the loop calls with the best weights at the end when
        restores_best (the course's Solver restores the params only)."""
        self.load_weights(weights)

    def evaluate_split(self, split: str) -> dict[str, float]:
        """The model's metrics on a whole split (val, test), e.g. {"test_acc": 0.51}."""
        ...

    def scale_learning_rate(self, factor: float) -> None:
        """Multiply the learning rate from here on (a resumed run with a new rate)."""
        ...

    def extra_metrics(self) -> dict[str, Any]:
        """Default: {}. Numbers the summary records beyond the loop's (threads, set sizes)."""
        return {}

    def samples(self) -> dict[str, list[dict[str, Any]]]:
        """Default: {}. Generated outputs of the last evaluation per split (captions)."""
        return {}

    def write_extras(self, run_dir: Path) -> list[str]:
        """Default: nothing. Files beyond the weights the run folder gets; their names."""
        return []
