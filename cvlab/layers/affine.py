"""Affine (fully connected) and ReLU layers.

Large affine GEMMs are cut into blocks of columns of their output (forward and input
gradient) or rows (weight gradient), shared between the threads of the layers' threading
policy (cvlab.layers.threads). The number of blocks depends on the shapes only, so the results
are the same for any thread count.
"""

from __future__ import annotations

import numpy as np

from cvlab.layers import fast, threads

# One block per this many multiply-adds (at most MAX_BLOCKS); smaller products are one GEMM.
MACS_PER_BLOCK = 20_000_000
MAX_BLOCKS = 8


def _blocks(macs: int, size: int) -> list[tuple[int, int]]:
    return threads.split(size, min(MAX_BLOCKS, max(1, macs // MACS_PER_BLOCK)))


def _gemm(a: np.ndarray, b: np.ndarray, split: str) -> np.ndarray:
    """a @ b, in blocks of columns of b (split="columns") or rows of a ("rows") when large."""
    (M, K), N = a.shape, b.shape[1]
    same_float = a.dtype == b.dtype and a.dtype in (np.float32, np.float64)
    blocks = _blocks(M * K * N, N if split == "columns" else M) if same_float else []
    if len(blocks) <= 1:
        return a @ b
    out = np.empty((M, N), dtype=a.dtype)
    if split == "columns":
        def work(i: int) -> None:
            start, stop = blocks[i]
            np.matmul(a, b[:, start:stop], out=out[:, start:stop])
    else:
        def work(i: int) -> None:
            start, stop = blocks[i]
            np.matmul(a[start:stop], b, out=out[start:stop])
    threads.for_each(len(blocks), work)
    return out


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
    out = _gemm(x_rows, w, split="columns")
    if np.result_type(out, b) == out.dtype:
        out += b
    else:
        out = out + b
    return out, (x, w, b)


def affine_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of affine_forward.

    Inputs: dout (N, M) upstream gradient; cache (x, w, b) from the forward.
    Returns (dx (N, d_1, ..., d_k), dw (D, M), db (M,)).
    """
    x, w, _ = cache
    N = x.shape[0]
    dx = _gemm(dout, w.T, split="columns").reshape(x.shape)
    dw = _gemm(x.reshape(N, -1).T, dout, split="rows")
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
