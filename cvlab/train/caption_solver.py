"""CaptioningSolver: the course's CaptioningSolverPytorch, minibatch training of a CaptioningRNN.

    solver = CaptioningSolver(model, data, learning_rate=5e-3, batch_size=25, num_epochs=50,
                              print_every=10)
    solver.train()
    solver.loss_history

As in the course: minibatches of captions are drawn with replacement (`sample_coco_minibatch`),
iterations_per_epoch = max(num_train // batch_size, 1), the learning rate is multiplied by
lr_decay at each epoch end, Adam updates the parameters. The loop is cvlab's one training loop
(cvlab.train.core) driving a CaptioningSolverTask.

cvlab additions (keyword arguments): `optimizer` (an OptimizerConfig: any torch optimizer
cvlab knows, with its hyperparameters; default Adam at `learning_rate`), `grad_clip` (clip the
gradients' total norm), `rng` (minibatch sampling; default numpy's global RNG, as the course)
and `printer` (where verbose lines go).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from cvlab.data.coco import sample_coco_minibatch
from cvlab.models.nets.captioning import CaptioningRNN
from cvlab.train.core import LoopOptions, Records, SolverAdapter, run_loop
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


class CaptioningSolver:
    """Trains `model` on `data` (the dict of load_coco_data); see the module docstring."""

    def __init__(self, model: CaptioningRNN, data: dict[str, Any], **kwargs: Any) -> None:
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
        opt = options["optimizer"]
        if opt is None:
            from cvlab.config.train import OptimizerConfig

            opt = OptimizerConfig(name="adam", learning_rate=self.learning_rate)
        self.optim = make_optimizer(list(model.params.values()), opt)
        num_train = data["train_captions"].shape[0]
        self.iterations_per_epoch = max(num_train // self.batch_size, 1)
        self._reset()

    def _reset(self) -> None:
        self.epoch = 0  # epochs finished
        self.iteration = 0  # updates done
        self.loss_history: list[float] = []
        self.train_time_s = 0.0  # time spent in updates (not evaluation), for captions/s
        self.captions_seen = 0

    @property
    def lr(self) -> float:
        return float(self.optim.param_groups[0]["lr"])

    def _step(self) -> float:
        """One update on a random minibatch; returns the loss before the update (a
        non-finite loss is recorded, not applied)."""
        captions, features, _ = sample_coco_minibatch(
            self.data, batch_size=self.batch_size, split="train", rng=self.rng)
        start = time.perf_counter()
        loss = self.model.loss(features, captions)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(list(self.model.params.values()), self.grad_clip)
        value = float(loss.detach())
        if math.isfinite(value):
            self.optim.step()
        self.train_time_s += time.perf_counter() - start
        self.captions_seen += len(captions)
        self.loss_history.append(value)
        return value

    @property
    def captions_per_s(self) -> float:
        return self.captions_seen / self.train_time_s if self.train_time_s > 0 else 0.0

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
            "loss_history": list(self.loss_history),
            "rng": self.rng.get_state(),
            "train_time_s": self.train_time_s,
            "captions_seen": self.captions_seen,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a state from `state()`; ValueError when it does not fit this model."""
        self.model.load_state_dict(state["params"])
        self.optim.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        self.epoch = int(state["epoch"])
        self.loss_history = [float(v) for v in state["loss_history"]]
        self.rng.set_state(state["rng"])
        self.train_time_s = float(state["train_time_s"])
        self.captions_seen = int(state["captions_seen"])

    def train(self, records: Records | None = None) -> str:
        """Run the optimization; returns the status (completed | diverged)."""
        options = LoopOptions(print_every=self.print_every, verbose=self.verbose,
                              printer=self.printer)
        return run_loop(CaptioningSolverTask(self), options, records).status


class CaptioningSolverTask(SolverAdapter):
    """The CaptioningSolver as a cvlab.train.core Task (no evaluation: see caption_task)."""

    def learning_rate(self) -> float:
        return self.solver.lr

    def should_evaluate(self, epoch_end: bool) -> bool:
        return False

    def evaluate(self) -> dict[str, float]:
        return {}

    def describe(self, metrics: dict[str, float]) -> str:
        return ""
