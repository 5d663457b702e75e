"""Convolution, the naive way: explicit loops over samples, filters and output positions.

Slow and simple; the reference the fast layers (cvlab.layers.fast) are checked against.
"""

from __future__ import annotations

import numpy as np

from cvlab.layers._validate import conv_output_shape


def conv_forward_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray,
                       conv_param: dict) -> tuple[np.ndarray, tuple]:
    """Convolution (cross-correlation) of N inputs with F filters.

    Inputs:
    - x: (N, C, H, W)
    - w: (F, C, HH, WW)
    - b: (F,)
    - conv_param: 'stride' (pixels between neighbouring receptive fields),
      'pad' (zeros added on both sides of H and W)

    Returns (out, cache): out (N, F, H', W') with H' = 1 + (H + 2 * pad - HH) // stride and
    W' = 1 + (W + 2 * pad - WW) // stride; cache (x, w, b, conv_param).
    """
    stride, pad, N, F, H_out, W_out = conv_output_shape(x, w, b, conv_param)
    _, _, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, H_out, W_out), dtype=np.result_type(x, w))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                top = i * stride
                for j in range(W_out):
                    left = j * stride
                    window = x_pad[n, :, top:top + HH, left:left + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """Backward of conv_forward_naive.

    Inputs: dout (N, F, H', W'), cache (x, w, b, conv_param).
    Returns (dx (N, C, H, W), dw (F, C, HH, WW), db (F,)).
    """
    x, w, b, conv_param = cache
    stride, pad, N, F, H_out, W_out = conv_output_shape(x, w, b, conv_param)
    _, _, H, W = x.shape
    _, _, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                top = i * stride
                for j in range(W_out):
                    left = j * stride
                    grad = dout[n, f, i, j]
                    dw[f] += grad * x_pad[n, :, top:top + HH, left:left + WW]
                    dx_pad[n, :, top:top + HH, left:left + WW] += grad * w[f]
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db
