"""The conv - relu - max pool sandwich with fused kernels (the ThreeLayerConvNet's first layer).

Forward, per block of images: im2col and one GEMM as conv_forward_fast, then one kernel adds
the bias, applies the relu and max-pools the block while its GEMM output is still in cache,
keeping only the pooled output (N, F, H'', W'') and each window's argmax offset (uint8): the
(N, F, H', W') conv and relu outputs are never written to memory. Backward, per block: one
kernel routes each pooled gradient to its window's maximum when that maximum is > 0 (the relu
let it through), straight into the GEMM layout; then dw (and dx unless the caller opts out) as
in conv_backward_fast. The results equal conv_forward_fast - relu_forward -
max_pool_forward_fast and their backward passes: the pooled output, the argmax and the routed
gradients are the same numbers; dw and db are sums of the same products, in another order.
"""

from __future__ import annotations

import numpy as np

from cvlab.layers import fast
from cvlab.layers._validate import pool_output_shape

MAX_WINDOW = 256  # argmax offsets are stored as uint8


def fused_kernels_fit(pool_param: dict) -> bool:
    """Whether the fused kernels handle this pool window (at most MAX_WINDOW positions)."""
    return pool_param.get("pool_height", 2) * pool_param.get("pool_width", 2) <= MAX_WINDOW


def conv_relu_pool_forward_fused(x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict,
                                 pool_param: dict) -> tuple[np.ndarray, tuple]:
    """conv (x (N, C, H, W), w (F, C, HH, WW), b (F,)) - relu - max pool ->
    (out (N, F, H'', W''), cache)."""
    dtype = fast._float_dtype(x, w)
    g = fast.conv_geometry(x, w, b, conv_param, dtype.itemsize)
    pool_height, pool_width, pool_stride, H_pool, W_pool = pool_output_shape(
        np.empty((0, 0, g.H_out, g.W_out)), pool_param)
    if not fused_kernels_fit(pool_param):
        raise ValueError(f"the fused conv-relu-pool handles pool windows of at most {MAX_WINDOW} "
                         f"positions, got {pool_height}x{pool_width}")
    kernels = fast.kernels()
    x = fast._float_array(x, dtype)
    w_rows = fast._float_array(w, dtype).reshape(g.F, -1)
    bias = np.ascontiguousarray(b, dtype=dtype)
    out = np.empty((g.N, g.F, H_pool, W_pool), dtype=dtype)
    argmax = np.empty((g.N, g.F, H_pool, W_pool), dtype=np.uint8)

    def work(_: int, start: int, stop: int) -> None:
        cols = fast.im2col_block(kernels, x, g, start, stop)
        rows = np.matmul(w_rows, cols, out=fast.scratch("rows", (g.F, cols.shape[1]), dtype))
        kernels.bias_relu_pool(rows, bias, g.W_out, pool_height, pool_width, pool_stride,
                               out[start:stop], argmax[start:stop])

    fast.for_each_block(g, work)
    pool = (pool_height, pool_width, pool_stride)
    return out, (x, w, b, conv_param, pool, out, argmax)


def conv_relu_pool_backward_fused(dout: np.ndarray, cache: tuple, compute_dx: bool = True
                                  ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Backward of conv_relu_pool_forward_fused: dout (N, F, H'', W'') -> (dx, dw, db);
    dx is None with compute_dx=False."""
    x, w, b, conv_param, (pool_height, pool_width, pool_stride), pooled, argmax = cache
    if np.shape(dout) != pooled.shape:
        raise ValueError(f"conv-relu-pool backward: dout {np.shape(dout)} must have the "
                         f"forward's output shape {pooled.shape}")
    dtype = x.dtype
    g = fast.conv_geometry(x, w, b, conv_param, dtype.itemsize)
    kernels = fast.kernels()
    dout = fast._float_array(dout, dtype)
    db_parts = np.empty((g.N, g.F), dtype=np.float64)

    def routed_rows(start: int, stop: int) -> np.ndarray:
        """The block's pooled gradient routed through pool and relu, as (F, n * H' * W') rows."""
        rows = fast.scratch("dout_rows", (g.F, (stop - start) * g.P), dtype)
        kernels.relu_pool_backward(dout[start:stop], pooled[start:stop], argmax[start:stop],
                                   g.W_out, pool_height, pool_width, pool_stride, rows,
                                   db_parts[start:stop])
        return rows

    dx, dw = fast.conv_backward_blocks(g, x, w, routed_rows, compute_dx)
    db = db_parts.sum(axis=0).astype(np.result_type(b, dtype))
    return dx, dw, db
