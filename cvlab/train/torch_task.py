"""`cvlab train` for the PyTorch classifiers: data held on the device, batched augmentation,
schedules, lookahead and test-time augmentation, as one Task of cvlab.train.core.

Images stay uint8 (N, C, H, W) on the training device; each batch is cropped and mirrored by
one gather (cvlab.train.augment), then normalized with the course's per-channel mean/std.
Each epoch's order and augmentation come from a generator seeded by (seed, epoch), so a run
resumed from its epoch-end checkpoint draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cvlab.config.train import OptimizerConfig
from cvlab.data.constants import CIFAR10_MEAN, CIFAR10_STD
from cvlab.train.augment import (
    crop_flip,
    epoch_flips,
    normalize,
    predict_with_tta,
    random_offsets,
)
from cvlab.train.task import Task, Weights
from cvlab.train.torch_schedules import Lookahead, lr_factor, make_optimizer

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class DeviceData:
    """uint8 images (N, C, H, W) and int64 labels of each split, on one device."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def from_splits(cls, splits: Any, device: torch.device) -> DeviceData:
        def images(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)).to(device)

        def labels(y: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)

        return cls(images(splits.X_train), labels(splits.y_train), images(splits.X_val),
                   labels(splits.y_val), images(splits.X_test), labels(splits.y_test),
                   torch.tensor(CIFAR10_MEAN, device=device),
                   torch.tensor(CIFAR10_STD, device=device))


class TrainingHooks:
    """Optional hooks a torch model may offer the trainer by subclassing this class (the
    challenge net does); each default does nothing. A model needs no particular base class."""

    def before_training(self, images: torch.Tensor) -> None:
        """Once before the first update of a new run: normalized training images (N, C, H, W)
        (the challenge net fits its whitening filters to them)."""

    def on_epoch_start(self, epoch: int) -> None:
        """At the start of each epoch (0-based)."""

    def param_groups(self, lr: float, weight_decay: float,
                     bias_lr_scale: float) -> list[dict[str, Any]] | None:
        """The optimizer's parameter groups, or None for one group of all trainable
        parameters."""
        return None


NO_HOOKS = TrainingHooks()


def hooks_of(model: nn.Module) -> TrainingHooks:
    return model if isinstance(model, TrainingHooks) else NO_HOOKS


@dataclass
class Recipe:
    """What a torch run needs beyond the model and the data (plain values)."""

    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    epochs: int = 1
    batch_size: int = 64
    check_every: int = 100  # iterations between accuracy checks (and at each epoch end)
    seed: int = 0
    dtype: torch.dtype = torch.float32
    manual_sgd: bool = False  # the barebones level's `w -= lr * dw`
    crop_pad: int = 0
    flip: str = "none"
    padding_mode: str = "reflect"
    tta: str = "none"
    bias_lr_scale: float = 1.0  # learning-rate factor of the bias groups (TrainingHooks)
    lookahead_every: int = 0
    amp: str = "none"  # none | bf16 | fp16 (CUDA), none | bf16 (CPU)
    channels_last: bool = False
    compile: bool = False
    train_eval_samples: int | None = 1000  # training images for the train-accuracy check
    val_eval_samples: int | None = None
    eval_batch_size: int = 1000


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX tiles or AVX512-BF16)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_amp(amp: str, device: torch.device) -> str:
    """The mixed precision actually used: as asked on CUDA; on CPU bf16 only where the CPU has
    it in hardware (elsewhere it would be slower than float32); none on other devices."""
    if amp == "none" or device.type == "cuda":
        return amp
    if device.type == "cpu" and amp == "bf16":
        if cpu_has_native_bf16():
            log.info("device.amp=bf16 on CPU: autocast to bf16 (this CPU has AMX/AVX512-BF16)")
            return amp
        log.info("device.amp=bf16: this CPU has no native bf16 (AMX/AVX512-BF16); running in "
                 "float32")
        return "none"
    log.info("device.amp=%s applies on CUDA (and bf16 on CPU); running in float32", amp)
    return "none"


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "none" or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _batch(x: torch.Tensor, data: DeviceData, r: Recipe) -> torch.Tensor:
    x = normalize(x, data.mean, data.std, r.dtype)
    return x.contiguous(memory_format=torch.channels_last) if r.channels_last else x


@torch.no_grad()
def check_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   data: DeviceData, r: Recipe, device: torch.device) -> float:
    """Fraction of `images` (uint8, N, C, H, W) the model classifies right (eval mode, TTA)."""
    if len(labels) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    for start in range(0, len(labels), r.eval_batch_size):
        x = _batch(images[start:start + r.eval_batch_size], data, r)
        with _autocast(device, r.amp):
            scores = predict_with_tta(model, x, r.tta)
        correct += (scores.argmax(1) == labels[start:start + r.eval_batch_size]).sum()
    model.train(was_training)
    return correct.item() / len(labels)


def _subset(images: torch.Tensor, labels: torch.Tensor, count: int | None, seed: int):
    if count is None or count >= len(labels):
        return images, labels
    index = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:count]
    index = index.to(images.device)
    return images[index], labels[index]


class TorchRunTask(Task):
    """One torch classifier's training as a Task of the loop (see the module docstring)."""

    metric_columns = ("train_acc", "val_acc")
    best_metric = "val_acc"
    best_of = ("train_acc", "val_acc")

    def __init__(self, model: nn.Module, data: DeviceData, r: Recipe,
                 device: torch.device) -> None:
        self.model, self.data, self.r, self.device = model, data, r, device
        self.num_train = len(data.y_train)
        self.num_epochs = r.epochs
        self.iterations_per_epoch = math.ceil(self.num_train / r.batch_size)
        self.total_steps = self.iterations_per_epoch * r.epochs
        self.examples_per_update = r.batch_size
        self.flush_every = 1 if device.type == "cpu" else r.check_every
        self.hooks = hooks_of(model)
        groups = self.hooks.param_groups(r.optimizer.learning_rate, r.optimizer.weight_decay,
                                         r.bias_lr_scale)
        params = groups if groups is not None else [p for p in model.parameters()
                                                    if p.requires_grad]
        self.optimizer = make_optimizer(params, r.optimizer, manual_sgd=r.manual_sgd)
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.scaler = (torch.amp.GradScaler("cuda")
                       if r.amp == "fp16" and device.type == "cuda" else None)
        self.lookahead = Lookahead(model, r.lookahead_every) if r.lookahead_every else None
        self.step_model = torch.compile(model) if r.compile else model
        self.iteration = self.epoch = self.examples = 0
        self.train_check = _subset(data.X_train, data.y_train, r.train_eval_samples, r.seed + 1)
        self.val_check = _subset(data.X_val, data.y_val, r.val_eval_samples, r.seed + 2)
        self._plan: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None] | None = None

    def _start_epoch(self) -> None:
        """The epoch's order, flips and offsets, from a generator seeded by (seed, epoch)."""
        r, n = self.r, self.num_train
        self.hooks.on_epoch_start(self.epoch)
        generator = torch.Generator().manual_seed(r.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=generator)
        flips = epoch_flips(n, self.epoch, r.flip, r.seed, generator)
        offsets = random_offsets(n, r.crop_pad, generator) if r.crop_pad else None
        if r.crop_pad > 0 or r.flip != "none":
            offsets = offsets if offsets is not None else torch.zeros(n, 2, dtype=torch.long)
            self._plan = (order.to(self.device), flips[order].to(self.device),
                          offsets[order].to(self.device))
        else:
            self._plan = (order.to(self.device), None, None)

    def step(self) -> torch.Tensor:
        position = self.iteration % self.iterations_per_epoch
        if position == 0 or self._plan is None:
            self._start_epoch()
        order, flips, offsets = self._plan
        batch = slice(position * self.r.batch_size, (position + 1) * self.r.batch_size)
        index = order[batch]
        x = self.data.X_train[index]
        if flips is not None:
            x = crop_flip(x, offsets[batch], flips[batch], self.r.padding_mode)
        factor = self._lr_factor(self.iteration)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        loss = self._train_step(_batch(x, self.data, self.r), self.data.y_train[index])
        self.iteration += 1
        self.examples += len(index)
        if self.lookahead is not None:
            self.lookahead.after_step(self.iteration, self.total_steps)
        return loss.detach()

    def _lr_factor(self, iteration: int) -> float:
        return lr_factor(self.r.optimizer, iteration, self.total_steps, self.iterations_per_epoch)

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One forward/backward/update on batch x (N, C, H, W), labels y (N,); the loss."""
        r = self.r
        with _autocast(self.device, r.amp):
            scores = self.step_model(x)
        loss = F.cross_entropy(scores.float(), y, label_smoothing=r.optimizer.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if r.optimizer.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), r.optimizer.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return loss

    def to_floats(self, losses: list[Any]) -> list[float]:
        return torch.stack(losses).float().cpu().tolist()

    def learning_rate(self) -> float:
        return self.base_lrs[-1] * self._lr_factor(self.iteration)

    def end_epoch(self) -> None:
        self.epoch += 1
        if self.lookahead is not None and self.epoch == self.num_epochs:
            self.lookahead.finish()

    def should_evaluate(self, epoch_end: bool) -> bool:
        return epoch_end or self.iteration % self.r.check_every == 0

    def evaluate(self) -> dict[str, float]:
        train_acc = check_accuracy(self.step_model, *self.train_check, self.data, self.r,
                                   self.device)
        val_acc = check_accuracy(self.step_model, *self.val_check, self.data, self.r,
                                 self.device)
        return {"train_acc": train_acc, "val_acc": val_acc}

    def describe(self, metrics: dict[str, float]) -> str:
        return (f"epoch {self.epoch}/{self.num_epochs}, iteration {self.iteration}: train_acc "
                f"{metrics['train_acc']:.4f}, val_acc {metrics['val_acc']:.4f}")

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "base_lrs": list(self.base_lrs),
            "lookahead": self.lookahead.state_dict() if self.lookahead is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "iteration": self.iteration, "epoch": self.epoch, "examples": self.examples,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore `state()`; ValueError / RuntimeError when it does not fit this model."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        if self.lookahead is not None and state.get("lookahead") is not None:
            self.lookahead.load_state_dict(state["lookahead"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.iteration, self.epoch = int(state["iteration"]), int(state["epoch"])
        self.examples = int(state["examples"])
        self._plan = None

    def scale_learning_rate(self, factor: float) -> None:
        self.base_lrs = [lr * factor for lr in self.base_lrs]

    def evaluate_split(self, split: str) -> dict[str, float]:
        images, labels = getattr(self.data, f"X_{split}"), getattr(self.data, f"y_{split}")
        accuracy = check_accuracy(self.step_model, images, labels, self.data, self.r,
                                  self.device)
        log.info("%s accuracy: %.4f on %d images", split, accuracy, len(labels))
        return {f"{split}_acc": accuracy}

    def weights(self) -> Weights:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_weights(self, weights: Weights) -> None:
        self.model.load_state_dict(weights)


def warm_up(task: TorchRunTask, steps: int = 3) -> None:
    """Run a few untimed steps and an evaluation (kernel selection, compilation), then restore
    the model and optimizer: results are unchanged, only the timing excludes the start-up."""
    saved_model = copy.deepcopy(task.model.state_dict())
    saved_optimizer = copy.deepcopy(task.optimizer.state_dict())
    data, r = task.data, task.r
    sizes = [min(r.batch_size, task.num_train)] * steps
    if task.num_train % r.batch_size:
        sizes.append(task.num_train % r.batch_size)
    for size in sizes:
        task._train_step(_batch(data.X_train[:size], data, r), data.y_train[:size])
    count = min(len(data.y_val), r.eval_batch_size)
    check_accuracy(task.step_model, data.X_val[:count], data.y_val[:count], data, r, task.device)
    task.model.load_state_dict(saved_model)
    task.optimizer.load_state_dict(saved_optimizer)
    task.optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
