"""Pure-numpy kernels of the fast layers, used when the compiled cvlab.ext is missing.

Same layouts and results as cvlab/ext/im2col.pyx, maxpool.pyx and fused.pyx: im2col is one
strided view and one copy; col2im and the max-pool backward accumulate with one strided-slice
addition per window offset (HH * WW of them), never np.add.at.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def _pad(x: np.ndarray, pad: int) -> np.ndarray:
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def _windows(x: np.ndarray, height: int, width: int, stride: int, H_out: int,
             W_out: int) -> np.ndarray:
    """Read-only view (N, C, height, width, H_out, W_out) of the windows of x (N, C, H, W)."""
    sN, sC, sH, sW = x.strides
    N, C = x.shape[:2]
    return as_strided(x, shape=(N, C, height, width, H_out, W_out),
                      strides=(sN, sC, sH, sW, sH * stride, sW * stride), writeable=False)


def im2col(x: np.ndarray, HH: int, WW: int, pad: int, stride: int, H_out: int,
           W_out: int, out: np.ndarray | None = None) -> np.ndarray:
    """x (N, C, H, W) -> cols (C * HH * WW, N * H_out * W_out), same layout as cvlab.ext;
    written into `out` when given."""
    N, C = x.shape[:2]
    windows = _windows(_pad(x, pad), HH, WW, stride, H_out, W_out)
    # (C, HH, WW, N, H_out, W_out): rows (c, di, dj), columns (n, i, j)
    if out is None:
        out = np.empty((C * HH * WW, N * H_out * W_out), dtype=x.dtype)
    out.reshape(C, HH, WW, N, H_out, W_out)[...] = windows.transpose(1, 2, 3, 0, 4, 5)
    return out


def col2im(cols: np.ndarray, N: int, C: int, H: int, W: int, HH: int, WW: int, pad: int,
           stride: int, H_out: int, W_out: int, out: np.ndarray | None = None) -> np.ndarray:
    """cols (C * HH * WW, N * H_out * W_out) -> dx (N, C, H, W), the adjoint of im2col;
    written into `out` when given."""
    dx_pad = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    blocks = cols.reshape(C, HH, WW, N, H_out, W_out).transpose(3, 0, 1, 2, 4, 5)
    row_end, col_end = stride * (H_out - 1) + 1, stride * (W_out - 1) + 1
    for di in range(HH):
        for dj in range(WW):
            dx_pad[:, :, di:di + row_end:stride, dj:dj + col_end:stride] += blocks[:, :, di, dj]
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W] if pad else dx_pad
    if out is None:
        return dx
    out[...] = dx
    return out


def max_pool_forward(x: np.ndarray, pool_height: int, pool_width: int, stride: int,
                     H_out: int, W_out: int) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, H, W) -> (out, argmax) like cvlab.ext.maxpool: argmax is the flat index
    row * W + col of the first maximum of each window, int64 (N, C, H_out, W_out)."""
    N, C, H, W = x.shape
    windows = _windows(x, pool_height, pool_width, stride, H_out, W_out)
    flat = windows.transpose(0, 1, 4, 5, 2, 3).reshape(N, C, H_out, W_out, -1)
    offset = flat.argmax(axis=-1)
    out = np.take_along_axis(flat, offset[..., None], axis=-1)[..., 0]
    di, dj = np.divmod(offset, pool_width)
    rows = (np.arange(H_out) * stride)[:, None] + di
    cols = (np.arange(W_out) * stride)[None, :] + dj
    return out, (rows * W + cols).astype(np.int64)


def max_pool_backward(dout: np.ndarray, argmax: np.ndarray, H: int, W: int,
                      pool_height: int, pool_width: int, stride: int) -> np.ndarray:
    """Add dout (N, C, H_out, W_out) at the recorded maxima: dx (N, C, H, W)."""
    N, C, H_out, W_out = dout.shape
    if stride >= pool_height and stride >= pool_width:
        # Windows do not overlap: every input position receives at most one gradient.
        dx = np.zeros((N, C, H * W), dtype=dout.dtype)
        np.put_along_axis(dx, argmax.reshape(N, C, -1), dout.reshape(N, C, -1), axis=-1)
        return dx.reshape(N, C, H, W)
    # Overlapping windows may share a maximum: accumulate one window offset at a time.
    dx = np.zeros((N, C, H, W), dtype=dout.dtype)
    rows, cols = np.divmod(argmax, W)
    offset = ((rows - (np.arange(H_out) * stride)[:, None]) * pool_width
              + cols - (np.arange(W_out) * stride)[None, :])
    row_end, col_end = stride * (H_out - 1) + 1, stride * (W_out - 1) + 1
    zero = dout.dtype.type(0)
    for di in range(pool_height):
        for dj in range(pool_width):
            routed = np.where(offset == di * pool_width + dj, dout, zero)
            dx[:, :, di:di + row_end:stride, dj:dj + col_end:stride] += routed
    return dx


def bias_relu_pool(rows: np.ndarray, bias: np.ndarray, W_conv: int, pool_height: int,
                   pool_width: int, stride: int, pooled: np.ndarray, argmax: np.ndarray) -> None:
    """Like cvlab.ext.fused.bias_relu_pool: rows (F, n * H_conv * W_conv) of n images without
    the bias -> pooled (n, F, H', W') of relu(rows + bias) and the first maximum's offset in each
    window (uint8 argmax (n, F, H', W')), written in place."""
    n, F, H_out, W_out = pooled.shape
    a = rows.reshape(F, n, -1, W_conv).transpose(1, 0, 2, 3) + bias[:, None, None]
    out, index = max_pool_forward(np.maximum(a, 0), pool_height, pool_width, stride, H_out,
                                  W_out)
    pooled[...] = out
    row, col = np.divmod(index, W_conv)
    argmax[...] = ((row - (np.arange(H_out) * stride)[:, None]) * pool_width
                   + col - (np.arange(W_out) * stride)[None, :])


def relu_pool_backward(dpool: np.ndarray, pooled: np.ndarray, argmax: np.ndarray, W_conv: int,
                       pool_height: int, pool_width: int, stride: int, drows: np.ndarray,
                       db: np.ndarray) -> None:
    """Like cvlab.ext.fused.relu_pool_backward: each window's gradient to its maximum when
    that is > 0, into drows (F, n * H_conv * W_conv) (overwritten); db (n, F) gets the sums."""
    n, F, H_out, W_out = dpool.shape
    passed = np.where(pooled > 0, dpool, dpool.dtype.type(0))
    di, dj = np.divmod(argmax.astype(np.int64), pool_width)
    rows = (np.arange(H_out) * stride)[:, None] + di
    cols = (np.arange(W_out) * stride)[None, :] + dj
    H_conv = drows.shape[1] // (n * W_conv)
    dx = max_pool_backward(passed, rows * W_conv + cols, H_conv, W_conv, pool_height,
                           pool_width, stride)
    drows.reshape(F, n, -1)[...] = dx.reshape(n, F, -1).transpose(1, 0, 2)
    db[...] = passed.sum(axis=(2, 3), dtype=np.float64)


def relu_backward(dout: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """out = dout * (x > 0), flat arrays of one length (out may be dout)."""
    np.multiply(dout, x > 0, out=out)
