"""Registry of gradient checks run by `cvlab gradcheck layer=<name>|all`.

A check is a function `check(rng: np.random.RandomState) -> list[CheckRow]` that builds
seeded float64 inputs with small shapes, computes analytic gradients and compares them with
numeric ones (cvlab.gradcheck). The names are known here without importing anything
(CHECK_NAMES, module by module, in the order `layer=all` runs them); a check's module is
imported only when the check runs, so the numpy checks never import torch. Modules register
their checks with `@register("name")`; a name registered by any other imported module (a
user's own check) runs after the built-in ones.

Each row is judged on one error (see docs/gradcheck.md for the error model behind the
tolerances):
- `rel`: the course's relative error, the maximum over entries of |a-n| / max(1e-8, |a|+|n|).
  Used where the numeric error of an entry is proportional to the entry itself (elementwise
  layers, the losses), so no entry can inflate it.
- `norm`: ||a-n|| / (||a|| + ||n||) over the whole tensor. Used where the numeric error of an
  entry is set by the size of f rather than of the entry: an entry close to zero makes the
  course's maximum arbitrarily large on an unlucky seed or BLAS kernel, the norm does not move.
- `abs`: max |a-n|, for a gradient that is exactly zero (a bias followed by a normalization).
Every row also records the course's relative error, to compare with the notebooks' figures.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cvlab.gradcheck import centered_difference_error, max_abs_error, norm_error, rel_error

METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rel": rel_error, "norm": norm_error, "abs": max_abs_error,
}


@dataclass(frozen=True)
class CheckRow:
    """One compared quantity: `what` (an input or parameter, e.g. dx, dW1), the error named by
    `metric` (rel, norm or abs), its bound, the course's max-over-entries relative error, and
    how many of its `entries` were left out at kinks."""

    what: str
    error: float
    tolerance: float
    metric: str = "rel"
    rel_error: float = field(default=math.nan)
    kinked: int = 0
    entries: int = 0

    @property
    def passed(self) -> bool:
        return bool(self.error <= self.tolerance)

    @property
    def label(self) -> str:
        """`what`, with the entries left out at kinks when there were any."""
        if not self.kinked:
            return self.what
        return f"{self.what} ({self.kinked} of {self.entries} at kinks, skipped)"


# Tolerances (docs/gradcheck.md derives them from the error model in cvlab.gradcheck and lists
# the worst values measured for correct code and for broken backward passes).
H = 1e-5  # the course's step
NUMERIC_TOLERANCE = 1e-7  # norm error, analytic vs centered differences
ANALYTIC_TOLERANCE = 1e-12  # norm error between two analytic computations (rounding only)
ELEMENTWISE_TOLERANCE = 1e-8  # course rel error where an entry's error scales with the entry
MAX_KINKED_FRACTION = 0.5  # more entries than this at kinks: the check measured too little


def zero_gradient_tolerance(f_size: float, h: float = H) -> float:
    """Bound on max |numeric| for a gradient that is exactly zero: 100x the rounding error of a
    centered difference of a function of size f_size."""
    return 100 * centered_difference_error(h, f_size)


def compare_gradients(what: str, analytic: np.ndarray, numeric: np.ndarray, tolerance: float,
                      metric: str = "norm", kinked: np.ndarray | None = None) -> CheckRow:
    """The row comparing an analytic gradient (or result) with a reference by `metric`.

    Entries marked in `kinked` (a kink of the function within the numeric step; see
    cvlab.gradcheck.numerical_gradient_off_kinks) are left out and counted in the row;
    a row with more than MAX_KINKED_FRACTION of its entries left out fails.
    """
    analytic, numeric = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, np.float64)
    skipped = 0 if kinked is None else int(kinked.sum())
    if skipped:
        if skipped > MAX_KINKED_FRACTION * kinked.size:
            return CheckRow(what, math.inf, tolerance, metric, math.nan, skipped, kinked.size)
        analytic, numeric = analytic[~kinked], numeric[~kinked]
    return CheckRow(what, METRICS[metric](analytic, numeric), tolerance, metric,
                    rel_error(analytic, numeric), skipped, analytic.size + skipped)


Check = Callable[[np.random.RandomState], list[CheckRow]]

# The built-in checks, module by module, in the order `layer=all` runs them.
CHECK_NAMES: dict[str, tuple[str, ...]] = {
    "cvlab.checks.layers": (
        "affine", "relu", "softmax", "svm", "batchnorm", "batchnorm_alt", "layernorm",
        "dropout", "conv", "conv_fast", "maxpool", "maxpool_fast", "spatial_batchnorm",
        "spatial_groupnorm", "affine_relu", "affine_norm_relu", "conv_relu", "conv_relu_pool",
        "conv_bn_relu",
    ),
    "cvlab.checks.models": ("fc_net", "cnn"),
    "cvlab.checks.recurrent": (
        "rnn_step", "rnn", "lstm_step", "lstm", "word_embedding", "temporal_affine",
        "temporal_softmax", "captioning_rnn", "captioning_lstm",
    ),
}
_MODULE_OF = {name: module for module, names in CHECK_NAMES.items() for name in names}
_CHECKS: dict[str, Check] = {}


def register(name: str) -> Callable[[Check], Check]:
    def add(fn: Check) -> Check:
        _CHECKS[name] = fn
        return fn

    return add


def check_names() -> list[str]:
    """Every check's name, built-in ones first, without importing any check module."""
    return [*_MODULE_OF, *(name for name in _CHECKS if name not in _MODULE_OF)]


def get_check(name: str) -> Check:
    """The check called `name`, importing the module that defines it (KeyError if unknown)."""
    if name not in _CHECKS and name in _MODULE_OF:
        importlib.import_module(_MODULE_OF[name])
    return _CHECKS[name]


def load_checks() -> dict[str, Check]:
    """All checks by name (imports every check module, torch included), in run order."""
    return {name: get_check(name) for name in check_names()}
