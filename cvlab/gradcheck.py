"""Numeric gradients by centered differences, as in the course (cs231n/gradient_check.py)."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np


def eval_numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                            verbose: bool = True, h: float = 1e-5) -> np.ndarray:
    """Numeric gradient of a scalar function f at x (x is perturbed in place and restored).

    Returns an array shaped like x; prints each entry when verbose.
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        ix = it.multi_index
        old_value = x[ix]
        x[ix] = old_value + h
        f_plus = f(x)
        x[ix] = old_value - h
        f_minus = f(x)
        x[ix] = old_value
        grad[ix] = (f_plus - f_minus) / (2 * h)
        if verbose:
            print(ix, grad[ix])
        it.iternext()
    return grad


def eval_numerical_gradient_array(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                                  df: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Numeric gradient of sum(f(x) * df) at x, for an array-valued f (df: upstream gradient)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        ix = it.multi_index
        old_value = x[ix]
        x[ix] = old_value + h
        pos = np.array(f(x), copy=True)
        x[ix] = old_value - h
        neg = np.array(f(x), copy=True)
        x[ix] = old_value
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def grad_check_sparse(f: Callable[[np.ndarray], float], x: np.ndarray,
                      analytic_grad: np.ndarray, num_checks: int = 10, h: float = 1e-5,
                      rng: random.Random | None = None, verbose: bool = True) -> list[float]:
    """Compare numeric and analytic gradients at `num_checks` random entries of x.

    Entries are drawn with Python's `random.randrange` (as the course) or `rng` when given.
    Prints one line per entry when verbose; returns the relative errors.
    """
    randrange = rng.randrange if rng is not None else random.randrange
    errors = []
    for _ in range(num_checks):
        ix = tuple(randrange(m) for m in x.shape)
        old_value = x[ix]
        x[ix] = old_value + h
        f_plus = f(x)
        x[ix] = old_value - h
        f_minus = f(x)
        x[ix] = old_value
        grad_numerical = (f_plus - f_minus) / (2 * h)
        grad_analytic = analytic_grad[ix]
        total = abs(grad_numerical) + abs(grad_analytic)
        error = abs(grad_numerical - grad_analytic) / total if total else 0.0
        errors.append(float(error))
        if verbose:
            print(f"numerical: {grad_numerical:f} analytic: {grad_analytic:f}, "
                  f"relative error: {error:e}")
    return errors


def rel_error(x: np.ndarray, y: np.ndarray) -> float:
    """max(|x - y| / max(1e-8, |x| + |y|)), the course's relative error."""
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))
