"""Affine (fully connected) and ReLU layers."""

from __future__ import annotations

import numpy as np

from cvlab.layers import fast


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Affine layer: out = x.reshape(N, D) @ w + b.

    Inputs:
    - x: (N, d_1, ..., d_k), flattened to (N, D) with D = d_1 * ... * d_k
    - w: (D, M) weights
    - b: (M,) biases

    Returns (out, cache): out (N, M); cache (x, w, b).
    """
    N = x.shape[0]
    x_rows = x.reshape(N, -1)
    if x_rows.shape[1] != w.shape[0] or np.ndim(w) != 2 or np.shape(b) != (w.shape[1],):
        raise ValueError(f"affine shapes do not match: x {x.shape} flattens to {x_rows.shape}, "
                         f"w {w.shape} must be (D, M) and b {np.shape(b)} must be (M,)")
    out = x_rows @ w + b
    return out, (x, w, b)


def affine_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of affine_forward.

    Inputs: dout (N, M) upstream gradient; cache (x, w, b) from the forward.
    Returns (dx (N, d_1, ..., d_k), dw (D, M), db (M,)).
    """
    x, w, _ = cache
    N = x.shape[0]
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(N, -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rectified linear unit: out = max(0, x), any shape. Returns (out, cache = x)."""
    out = np.maximum(x, 0)
    return out, x


def relu_backward(dout: np.ndarray, cache: np.ndarray,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Backward of relu_forward: dx = dout * (x > 0) (shape of x).

    out: where to write dx (it may be dout itself when the caller no longer needs dout);
    default a new array. No mask array is allocated when dout and x are float32 or float64
    arrays of one dtype (the products are the same, bit for bit).
    """
    x = cache
    if np.shape(dout) != np.shape(x):
        raise ValueError(f"relu backward: dout {np.shape(dout)} must have the shape of the "
                         f"forward's input {np.shape(x)}")
    fits = (isinstance(dout, np.ndarray) and isinstance(x, np.ndarray)
            and dout.dtype == x.dtype and dout.dtype in (np.float32, np.float64)
            and dout.flags.c_contiguous and x.flags.c_contiguous)
    if out is None:
        if not fits:
            return dout * (x > 0)
        out = np.empty_like(dout)
    if fits and out.dtype == dout.dtype and out.shape == dout.shape and out.flags.c_contiguous:
        fast.kernels().relu_backward(dout.reshape(-1), x.reshape(-1), out.reshape(-1))
    else:
        np.multiply(dout, x > 0, out=out)
    return out
