"""CaptioningSolver: the course's CaptioningSolverPytorch, minibatch training of a CaptioningRNN.

    solver = CaptioningSolver(model, data, learning_rate=5e-3, batch_size=25, num_epochs=50,
                              print_every=10)
    solver.train()
    solver.loss_history

As in the course: minibatches of captions are drawn with replacement (`sample_coco_minibatch`),
iterations_per_epoch = max(num_train // batch_size, 1), the learning rate is multiplied by
lr_decay at each epoch end, Adam updates the parameters. The loop is cvlab's one training loop
(cvlab.train.core) driving a CaptioningTask, which the training runs of `cvlab train` use
too, with BLEU evaluations (cvlab.train.caption_eval) added.

cvlab additions (keyword arguments): `optimizer` (an OptimizerConfig: any torch optimizer
cvlab knows, with its hyperparameters; default Adam at `learning_rate`), `grad_clip` (clip the
gradients' total norm), `rng` (minibatch sampling; default numpy's global RNG, as the course)
and `printer` (where verbose lines go).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from cvlab.config.train import OptimizerConfig
from cvlab.data.coco import sample_coco_minibatch
from cvlab.records.files import SAMPLES_NAME, atomic_write_text, to_json
from cvlab.train.caption_eval import Evaluator
from cvlab.train.core import LoopOptions, Records, run_loop
from cvlab.train.task import Task, Weights
from cvlab.train.torch_schedules import make_optimizer

DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "lr_decay": 1.0,
    "batch_size": 100,
    "num_epochs": 10,
    "print_every": 10,
    "verbose": True,
    # cvlab additions
    "optimizer": None,
    "grad_clip": None,
    "rng": None,
    "printer": None,
}
SCORES = ("bleu1", "bleu4", "course_bleu")


class CaptionModel(Protocol):
    """What the CaptioningSolver trains (cvlab.models.nets.captioning.CaptioningRNN)."""

    params: dict[str, torch.Tensor]

    def loss(self, features: np.ndarray, captions: np.ndarray) -> torch.Tensor: ...
    def sample(self, features: np.ndarray, max_length: int = 30) -> np.ndarray: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class CaptioningSolver:
    """Trains `model` on `data` (the dict of load_coco_data); see the module docstring."""

    def __init__(self, model: CaptionModel, data: dict[str, Any], **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(DEFAULTS))
        if unknown:
            raise ValueError(
                f"unrecognized arguments {', '.join(unknown)}; valid: {', '.join(DEFAULTS)}"
            )
        options = {**DEFAULTS, **kwargs}
        self.model, self.data = model, data
        self.learning_rate: float = options["learning_rate"]
        self.lr_decay: float = options["lr_decay"]
        self.batch_size: int = options["batch_size"]
        self.num_epochs: int = options["num_epochs"]
        self.print_every: int = options["print_every"]
        self.verbose: bool = options["verbose"]
        self.grad_clip: float | None = options["grad_clip"]
        self.rng = options["rng"] if options["rng"] is not None else np.random
        self.printer: Callable[[str], None] = options["printer"] or print
        optimizer: OptimizerConfig = options["optimizer"] or OptimizerConfig(
            name="adam", learning_rate=self.learning_rate)
        self.optim = make_optimizer(list(model.params.values()), optimizer)
        num_train = data["train_captions"].shape[0]
        self.iterations_per_epoch = max(num_train // self.batch_size, 1)
        self.epoch = 0  # epochs finished
        self.iteration = 0  # updates done
        self.loss_history: list[float] = []  # the loop's record, after train()

    @property
    def lr(self) -> float:
        return float(self.optim.param_groups[0]["lr"])

    def _step(self) -> float:
        """One update on a random minibatch; returns the loss before the update (a
        non-finite loss is recorded, not applied)."""
        captions, features, _ = sample_coco_minibatch(
            self.data, batch_size=self.batch_size, split="train", rng=self.rng)
        loss = self.model.loss(features, captions)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(list(self.model.params.values()), self.grad_clip)
        value = float(loss.detach())
        if math.isfinite(value):
            self.optim.step()
        return value

    def _end_epoch(self) -> None:
        self.epoch += 1
        for group in self.optim.param_groups:
            group["lr"] *= self.lr_decay

    def state(self) -> dict[str, Any]:
        return {
            "params": {k: v.detach().clone() for k, v in self.model.params.items()},
            "optimizer": self.optim.state_dict(),
            "iteration": self.iteration,
            "epoch": self.epoch,
            "rng": self.rng.get_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a state from `state()`; ValueError when it does not fit this model."""
        self.model.load_state_dict(state["params"])
        self.optim.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        self.epoch = int(state["epoch"])
        self.rng.set_state(state["rng"])

    def train(self, records: Records | None = None) -> str:
        """Run the optimization; returns the status (completed | diverged)."""
        options = LoopOptions(print_every=self.print_every, verbose=self.verbose,
                              printer=self.printer)
        result = run_loop(CaptioningTask(self), options, records)
        self.loss_history = list(result.losses)
        return result.status


@dataclass(frozen=True)
class Evaluation:
    """When and how a training run scores its captions (the model config's fields)."""

    bleu_every: int = 1  # epochs between evaluations (0: at the end only)
    max_length: int = 30  # words of a generated caption
    gallery_samples: int = 8  # images per split whose captions samples.json keeps


class CaptioningTask(Task):
    """The CaptioningSolver as a Task of the loop; with evaluators (train and val), BLEU
    evaluations, sample captions and samples.json, as `cvlab train` runs it."""

    throughput_name = "captions_per_s"
    final_prefix = ""  # the summary's val_bleu4 is the last evaluation's

    def __init__(self, solver: CaptioningSolver, evaluators: dict[str, Evaluator] | None = None,
                 evaluation: Evaluation = Evaluation(), description: dict[str, Any] | None = None
                 ) -> None:
        self.solver, self.evaluators, self.evaluation = solver, evaluators or {}, evaluation
        self.description = description or {}  # what samples.json says of the run
        self.num_epochs = solver.num_epochs
        self.iterations_per_epoch = solver.iterations_per_epoch
        self.examples_per_update = solver.batch_size
        self.metric_columns = tuple(f"{split}_{score}" for split in self.evaluators
                                    for score in SCORES)
        self.generated: dict[str, list[str]] = {}

    @property
    def iteration(self) -> int:
        return self.solver.iteration

    @property
    def epoch(self) -> int:
        return self.solver.epoch

    def step(self) -> float:
        loss = self.solver._step()
        self.solver.iteration += 1
        return loss

    def learning_rate(self) -> float:
        return self.solver.lr

    def end_epoch(self) -> None:
        self.solver._end_epoch()

    def should_evaluate(self, epoch_end: bool) -> bool:
        every = self.evaluation.bleu_every
        return bool(self.evaluators) and epoch_end and every > 0 and self.solver.epoch % every == 0

    def evaluate(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for split in self.evaluators:
            metrics.update(self.evaluate_split(split))
        return metrics

    def describe(self, metrics: dict[str, float]) -> str:
        if not metrics:
            return ""
        return (f"epoch {self.solver.epoch}: train BLEU-4 {metrics['train_bleu4']:.3f}, val "
                f"BLEU-1 {metrics['val_bleu1']:.3f} BLEU-4 {metrics['val_bleu4']:.3f} (course "
                f"{metrics['val_course_bleu']:.3f})")

    def state(self) -> dict[str, Any]:
        return self.solver.state()

    def load_state(self, state: dict[str, Any]) -> None:
        self.solver.load_state(state)

    def weights(self) -> Weights:
        return {k: v.detach().clone() for k, v in self.solver.model.params.items()}

    def load_weights(self, weights: Weights) -> None:
        self.solver.model.load_state_dict(weights)

    def evaluate_split(self, split: str) -> dict[str, float]:
        """BLEU of the `split` subset (val: the held-out images; the sets have no test split)."""
        evaluator = self.evaluators[split]
        self.generated[split] = evaluator.generate(self.solver.model,
                                                   self.evaluation.max_length)
        scores = evaluator.scores(self.generated[split])
        return {f"{split}_{name}": value for name, value in scores.items()}

    def scale_learning_rate(self, factor: float) -> None:
        for group in self.solver.optim.param_groups:
            group["lr"] *= factor

    def extra_metrics(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"train_captions": int(self.solver.data["train_captions"].shape[0])}
        if "val" in self.evaluators:
            extra["val_images"] = int(len(self.evaluators["val"].images))
        return extra

    def samples(self) -> dict[str, list[dict[str, Any]]]:
        """Generated and reference captions of `gallery_samples` images per split (of the
        last evaluation)."""
        count = self.evaluation.gallery_samples
        return {split: evaluator.samples(self.generated[split], count)
                for split, evaluator in self.evaluators.items() if split in self.generated}

    def write_extras(self, run_dir: Path) -> list[str]:
        if not self.generated:
            return []
        atomic_write_text(run_dir / SAMPLES_NAME,
                          to_json({**self.description, "splits": self.samples()}))
        return [SAMPLES_NAME]
