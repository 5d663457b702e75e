"""Optimizers, learning-rate schedules and lookahead averaging for the torch trainer.

Optimizer names follow the numpy update rules: sgd (the barebones level: a manual
`w -= lr * dw` step; torch.optim.SGD elsewhere), sgd_momentum (momentum, optionally Nesterov),
adam, adamw, rmsprop. Schedules give a factor on each group's base rate per iteration:

    none           lr_decay ** epoch (the course's decay at each epoch end; 1.0 = constant)
    step           lr_decay ** (epoch // step_epochs)
    warmup_linear  linear from warmup_start to 1 over the first warmup_frac of the steps,
                   then linear down to final_factor at the last step
    onecycle       the same shape with cosine ramps (warmup_start -> 1 -> final_factor)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cvlab.config.train import OptimizerConfig
from cvlab.vocab import OPTIMIZERS


class ManualSGD(torch.optim.Optimizer):
    """The barebones update: `w -= learning_rate * w.grad` for every parameter (no state)."""

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # noqa: D102
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    param.add_(param.grad, alpha=-group["lr"])


def make_optimizer(params: Any, opt: OptimizerConfig,
                   manual_sgd: bool = False) -> torch.optim.Optimizer:
    """The torch optimizer named by the OptimizerConfig `opt` over `params` (tensors, or
    groups that set their own weight decay); `manual_sgd`: the barebones `w -= lr * dw`."""
    params = list(params)
    grouped = bool(params) and isinstance(params[0], dict)
    weight_decay = 0.0 if grouped else opt.weight_decay
    lr = opt.learning_rate
    if opt.name == "sgd":
        if manual_sgd and weight_decay == 0.0:
            return ManualSGD(params, lr)
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if opt.name == "sgd_momentum":
        return torch.optim.SGD(params, lr=lr, momentum=opt.momentum, nesterov=opt.nesterov,
                               weight_decay=weight_decay)
    if opt.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(opt.beta1, opt.beta2), eps=opt.epsilon,
                                weight_decay=weight_decay)
    if opt.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(opt.beta1, opt.beta2), eps=opt.epsilon,
                                 weight_decay=weight_decay)
    if opt.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=opt.decay_rate, eps=opt.epsilon,
                                   weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {opt.name!r}; valid: {', '.join(OPTIMIZERS)}")


def lr_factor(opt: OptimizerConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rates at iteration `step` (0-based) of `total_steps`."""
    epoch = step // max(steps_per_epoch, 1)
    if opt.schedule == "none":
        return opt.lr_decay ** epoch
    if opt.schedule == "step":
        return opt.lr_decay ** (epoch // opt.step_epochs)
    warmup_steps = int(opt.warmup_frac * total_steps)
    start = opt.warmup_start
    if step < warmup_steps:
        progress = step / warmup_steps
        if opt.schedule == "onecycle":
            progress = 0.5 - 0.5 * math.cos(math.pi * progress)
        return start + (1.0 - start) * progress
    remaining = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / remaining, 1.0)
    if opt.schedule == "onecycle":
        progress = 0.5 - 0.5 * math.cos(math.pi * progress)
    return 1.0 - (1.0 - opt.final_factor) * progress


class Lookahead:
    """Every `every` steps pull the weights toward a slow copy and continue from it.

    slow <- decay * slow + (1 - decay) * fast; fast <- slow, with decay = base ** every *
    (step / total_steps) ** 3 (no averaging early, strong averaging late). `finish` copies the
    slow weights into the model. Applies to floating-point parameters and buffers.
    """

    def __init__(self, model: nn.Module, every: int, base: float = 0.95) -> None:
        self.every, self.base = every, base
        self.tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
        self.slow = [t.detach().clone() for t in self.tensors]

    @torch.no_grad()
    def update(self, decay: float) -> None:
        for slow, fast in zip(self.slow, self.tensors):
            slow.lerp_(fast, 1.0 - decay)
            fast.copy_(slow)

    def after_step(self, step: int, total_steps: int) -> None:
        """Call after optimizer step number `step` (1-based)."""
        if self.every and step % self.every == 0:
            self.update(self.base ** self.every * (step / total_steps) ** 3)

    def finish(self) -> None:
        self.update(1.0)

    def state_dict(self) -> list[torch.Tensor]:
        return [t.detach().cpu() for t in self.slow]

    def load_state_dict(self, state: list[torch.Tensor]) -> None:
        for slow, saved in zip(self.slow, state):
            slow.copy_(saved)
