"""Numeric gradients by centered differences, as in the course (cs231n/gradient_check.py).

Error model (float64, step h): the centered difference (f(x+h) - f(x-h)) / 2h of a gradient
entry g differs from g by
    truncation  h^2 / 6 * |f3|    (f3: third derivative of f along the entry; 0 where f is
                                   piecewise linear and no kink lies within h)
  + rounding    ~ eps * F / h     (eps = 2.2e-16; F: size of the terms summed into the part of
                                   f that the entry moves, e.g. sum |out * dout| over them)
At the course's h = 1e-5 that is ~1.7e-11 |f3| + ~2.2e-11 F, about 1e-10 for inputs and
upstream gradients of order 1 (`centered_difference_error`). Other BLAS kernels and thread
counts change the rounding (the order of the sums), not its size. Divided by an entry g close
to zero, that absolute error makes the course's max-over-entries `rel_error` as large as the
draw allows; `norm_error` divides by the size of the whole gradient instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

FLOAT64_EPS = float(np.finfo(np.float64).eps)


def centered_difference_error(h: float, f_size: float, third_derivative: float = 0.0) -> float:
    """Expected absolute error of one centered-difference entry (the module's error model):
    h^2 / 6 * |third_derivative| + eps * f_size / h."""
    return h**2 / 6 * abs(third_derivative) + FLOAT64_EPS * abs(f_size) / h


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


def numerical_gradient_off_kinks(f: Callable[[np.ndarray], np.ndarray | float], x: np.ndarray,
                                 df: np.ndarray | None = None, h: float = 1e-5,
                                 rtol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Numeric gradient of f (scalar) or of sum(f(x) * df) at x, and where it is not one.

    Each entry is evaluated at x +- h and x +- h/2. Where f is smooth within h, the centered
    differences at h and at h/2 agree, and so do the second differences (the one at h is 4x
    the one at h/2), to the error model's rounding (~eps F / h) and truncation (h^2 |f3| / 8).
    A kink (relu at 0, a change of max) at distance s < h breaks one test or the other for
    every s (the first fails to see s -> 0, the second s = h/3): such an entry is marked.
    Returns (the gradient at step h, a boolean mask of the marked entries). An unmarked
    entry's kink error is below ~4x the tests' bound (rtol relative plus 10x the rounding).
    """
    weights = np.float64(1.0) if df is None else np.asarray(df, dtype=np.float64)
    center = np.array(f(x), dtype=np.float64, copy=True)
    f_size = float(np.sum(np.abs(center * weights)))

    def at(ix: tuple[int, ...], step: float) -> tuple[np.ndarray, np.ndarray]:
        old_value = x[ix]
        x[ix] = old_value + step
        plus = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old_value - step
        minus = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old_value
        return plus, minus

    def estimate(ix: tuple[int, ...], step: float) -> tuple[float, bool]:
        (plus, minus), (half_plus, half_minus) = at(ix, step), at(ix, step / 2)
        coarse = float(np.sum((plus - minus) * weights)) / (2 * step)
        fine = float(np.sum((half_plus - half_minus) * weights)) / step
        second = float(np.sum((plus - 2 * center + minus) * weights))
        half_second = float(np.sum((half_plus - 2 * center + half_minus) * weights))
        bound = rtol * (abs(coarse) + abs(fine)) + 10 * centered_difference_error(step / 2, f_size)
        smooth = abs(coarse - fine) <= bound and abs(second - 4 * half_second) / step <= 2 * bound
        return coarse, smooth

    grad = np.zeros(x.shape, dtype=np.float64)
    kinked = np.zeros(x.shape, dtype=bool)
    for ix in np.ndindex(*x.shape):
        grad[ix], smooth = estimate(ix, h)
        kinked[ix] = not smooth
    return grad, kinked


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


def norm_error(x: np.ndarray, y: np.ndarray) -> float:
    """||x - y|| / (||x|| + ||y||) over the whole array (0 when both are 0): the relative error
    of the tensor as a whole, which an entry close to zero cannot inflate."""
    total = float(np.linalg.norm(x) + np.linalg.norm(y))
    return float(np.linalg.norm(x - y)) / total if total > 0 else 0.0


def max_abs_error(x: np.ndarray, y: np.ndarray) -> float:
    """max |x - y|: for a gradient that is exactly zero, where relative errors mean nothing."""
    return float(np.max(np.abs(x - y)))
