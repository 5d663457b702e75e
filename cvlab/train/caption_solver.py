"""CaptioningSolver: minibatch training of a CaptioningRNN with a torch optimizer.

As the course's CaptioningSolverPytorch: minibatches of captions are drawn with
replacement (`sample_coco_minibatch`), iterations_per_epoch = max(num_train // batch, 1),
the learning rate is multiplied by lr_decay at each epoch end. Added: optional gradient
clipping (total norm), a seeded rng for minibatches, callbacks for logging and
checkpoints, a state dict for resuming, and an early stop on a non-finite loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cvlab.data.coco import sample_coco_minibatch
from cvlab.models.captioning import CaptioningRNN

OPTIMIZERS = ("adam", "adamw", "sgd", "sgd_momentum", "rmsprop")


@dataclass
class SolverSettings:
    """Hyperparameters of a captioning run (course defaults)."""

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_decay: float = 1.0
    batch_size: int = 100
    num_epochs: int = 10
    grad_clip: float | None = None
    momentum: float = 0.9
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    decay_rate: float = 0.99
    weight_decay: float = 0.0


def make_optimizer(params: list[torch.Tensor], s: SolverSettings) -> torch.optim.Optimizer:
    """The torch.optim optimizer named by `s.optimizer`."""
    if s.optimizer == "adam":
        return torch.optim.Adam(params, lr=s.learning_rate, betas=(s.beta1, s.beta2),
                                eps=s.epsilon, weight_decay=s.weight_decay)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=s.learning_rate, betas=(s.beta1, s.beta2),
                                 eps=s.epsilon, weight_decay=s.weight_decay)
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.learning_rate, weight_decay=s.weight_decay)
    if s.optimizer == "sgd_momentum":
        return torch.optim.SGD(params, lr=s.learning_rate, momentum=s.momentum,
                               nesterov=s.nesterov, weight_decay=s.weight_decay)
    if s.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=s.learning_rate, alpha=s.decay_rate,
                                   eps=s.epsilon, weight_decay=s.weight_decay)
    raise ValueError(f"unknown optimizer {s.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")


class CaptioningSolver:
    """Trains `model` on `data` (the dict of load_coco_data) with `settings`.

    `train(on_iteration, on_epoch_end)` runs until num_epochs are done or the loss is not
    finite, and returns "completed" or "diverged". on_iteration(iteration, epoch, loss, lr)
    is called after every update; on_epoch_end(epoch) after each epoch (after the lr decay).
    `state_dict()` / `load_state_dict()` save and restore everything needed to continue.
    """

    def __init__(self, model: CaptioningRNN, data: dict[str, Any], settings: SolverSettings,
                 rng: np.random.RandomState | None = None) -> None:
        self.model, self.data, self.settings = model, data, settings
        self.rng = rng if rng is not None else np.random.RandomState(0)
        self.optimizer = make_optimizer(list(model.params.values()), settings)
        num_train = data["train_captions"].shape[0]
        self.iterations_per_epoch = max(num_train // settings.batch_size, 1)
        self.num_iterations = settings.num_epochs * self.iterations_per_epoch
        self.iteration = 0  # updates done
        self.epoch = 0  # epochs finished
        self.loss_history: list[float] = []
        self.train_time_s = 0.0  # time spent in updates (not evaluation), for captions/s
        self.captions_seen = 0

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self) -> float:
        """One update on a random minibatch; returns the loss before the update."""
        captions, features, _ = sample_coco_minibatch(
            self.data, batch_size=self.settings.batch_size, split="train", rng=self.rng)
        start = time.perf_counter()
        loss = self.model.loss(features, captions)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.settings.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(list(self.model.params.values()),
                                           self.settings.grad_clip)
        value = float(loss.detach())
        if math.isfinite(value):
            self.optimizer.step()
        self.train_time_s += time.perf_counter() - start
        self.captions_seen += len(captions)
        return value

    @property
    def captions_per_s(self) -> float:
        return self.captions_seen / self.train_time_s if self.train_time_s > 0 else 0.0

    def train(
        self,
        on_iteration: Callable[[int, int, float, float], None] | None = None,
        on_epoch_end: Callable[[int], None] | None = None,
    ) -> str:
        while self.iteration < self.num_iterations:
            lr = self.lr
            loss = self.step()
            self.iteration += 1
            self.loss_history.append(loss)
            if on_iteration is not None:
                on_iteration(self.iteration, self.epoch, loss, lr)
            if not math.isfinite(loss):
                return "diverged"
            if self.iteration % self.iterations_per_epoch == 0:
                self.epoch += 1
                for group in self.optimizer.param_groups:
                    group["lr"] *= self.settings.lr_decay
                if on_epoch_end is not None:
                    on_epoch_end(self.epoch)
        return "completed"

    def state_dict(self) -> dict[str, Any]:
        return {
            "params": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iteration": self.iteration,
            "epoch": self.epoch,
            "loss_history": list(self.loss_history),
            "rng": self.rng.get_state(),
            "train_time_s": self.train_time_s,
            "captions_seen": self.captions_seen,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        self.epoch = int(state["epoch"])
        self.loss_history = list(state["loss_history"])
        self.rng.set_state(state["rng"])
        self.train_time_s = float(state.get("train_time_s", 0.0))
        self.captions_seen = int(state.get("captions_seen", 0))
