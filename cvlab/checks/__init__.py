"""Registry of gradient checks run by `cvlab gradcheck layer=<name>|all`.

A check is a function `check(rng: np.random.RandomState) -> list[CheckRow]` that builds
seeded float64 inputs with small shapes, computes analytic gradients and compares them with
numeric ones (cvlab.gradcheck). Modules listed in CHECK_MODULES register their checks with
`@register("name")`; `layer=all` runs them module by module, each in registration order.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CheckRow:
    """One compared quantity: `what` (an input or parameter, e.g. dx, dW1), its error and bound."""

    what: str
    rel_error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(self.rel_error <= self.tolerance)


Check = Callable[[np.random.RandomState], list[CheckRow]]

CHECK_MODULES = ("cvlab.checks.layers", "cvlab.checks.models", "cvlab.checks.recurrent")
_CHECKS: dict[str, Check] = {}


def register(name: str) -> Callable[[Check], Check]:
    def add(fn: Check) -> Check:
        _CHECKS[name] = fn
        return fn

    return add


def load_checks() -> dict[str, Check]:
    """All registered checks, importing the modules that define them."""
    for module in CHECK_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
    # layers first, then models, then recurrent, whichever module was imported first
    rank = {module: i for i, module in enumerate(CHECK_MODULES)}
    ordered = sorted(_CHECKS.items(), key=lambda item: rank.get(item[1].__module__, len(rank)))
    return dict(ordered)
