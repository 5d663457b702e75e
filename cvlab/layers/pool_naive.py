"""Max pooling, the naive way: explicit loops over samples, channels and output positions.

Ties inside a window route the gradient to the first maximum (row-major order), as
PyTorch does; the fast layers follow the same rule.
"""

from __future__ import annotations

import numpy as np

from cvlab.layers._validate import pool_output_shape


def max_pool_forward_naive(x: np.ndarray, pool_param: dict) -> tuple[np.ndarray, tuple]:
    """Max pooling.

    Inputs:
    - x: (N, C, H, W)
    - pool_param: 'pool_height', 'pool_width', 'stride'

    Returns (out, cache): out (N, C, H', W') with H' = 1 + (H - pool_height) // stride and
    W' = 1 + (W - pool_width) // stride; cache (x, pool_param).
    """
    pool_height, pool_width, stride, H_out, W_out = pool_output_shape(x, pool_param)
    N, C, _, _ = x.shape
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                top = i * stride
                for j in range(W_out):
                    left = j * stride
                    out[n, c, i, j] = x[n, c, top:top + pool_height, left:left + pool_width].max()
    return out, (x, pool_param)


def max_pool_backward_naive(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Backward of max_pool_forward_naive.

    Inputs: dout (N, C, H', W'), cache (x, pool_param).
    Returns dx (N, C, H, W): each upstream gradient goes to the (first) maximum of its window.
    """
    x, pool_param = cache
    pool_height, pool_width, stride, H_out, W_out = pool_output_shape(x, pool_param)
    N, C, _, _ = x.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                top = i * stride
                for j in range(W_out):
                    left = j * stride
                    window = x[n, c, top:top + pool_height, left:left + pool_width]
                    di, dj = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, top + di, left + dj] += dout[n, c, i, j]
    return dx
