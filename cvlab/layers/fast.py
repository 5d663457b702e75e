"""Fast convolution and max pooling: same signatures and results as the naive layers.

Convolution is im2col + GEMM: the columns of a block of images (the whole batch when they
fit in CHUNK_BYTES, else cache-sized blocks of whole images) go through one large GEMM each
(forward: w (F, C*HH*WW) @ cols; backward: one GEMM for dw and, unless the caller opts out of
the input gradient, one for the column gradients, then col2im); no Python loop over positions
or filters, no np.add.at. The blocks are split between the threads of the process's threading
policy (cvlab.layers.threads); each block's dw goes to a slot of its own and the slots are
added in block order, so the result does not depend on the number of threads.
Max pooling records the index of each window's first maximum and routes the gradient there.
The kernels come from the compiled extension cvlab.ext (Cython) when it is built, otherwise
from the pure-numpy fallback cvlab.layers.fast_numpy; `implementation()` says which is in
use. float32 stays float32.

Set the environment variable CVLAB_FAST_LAYERS=numpy to force the fallback, or use the
context manager `use_implementation("numpy" | "cython")`.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace

import numpy as np

from cvlab.layers import fast_numpy, threads
from cvlab.layers._validate import conv_output_shape, pool_output_shape


def _load_compiled() -> SimpleNamespace | None:
    try:
        from cvlab.ext import fused as fused_ext
        from cvlab.ext import im2col as im2col_ext
        from cvlab.ext import maxpool as maxpool_ext
    except ImportError:
        return None
    return SimpleNamespace(
        name="cython",
        im2col=im2col_ext.im2col,
        col2im=im2col_ext.col2im,
        max_pool_forward=maxpool_ext.max_pool_forward,
        max_pool_backward=lambda dout, argmax, H, W, *pool: maxpool_ext.max_pool_backward(
            dout, argmax, H, W),
        bias_relu_pool=fused_ext.bias_relu_pool,
        relu_pool_backward=fused_ext.relu_pool_backward,
        relu_backward=fused_ext.relu_backward,
    )


def _numpy_kernels(module: ModuleType = fast_numpy) -> SimpleNamespace:
    return SimpleNamespace(name="numpy", im2col=module.im2col, col2im=module.col2im,
                           max_pool_forward=module.max_pool_forward,
                           max_pool_backward=module.max_pool_backward,
                           bias_relu_pool=module.bias_relu_pool,
                           relu_pool_backward=module.relu_pool_backward,
                           relu_backward=module.relu_backward)


KERNELS: dict[str, SimpleNamespace] = {"numpy": _numpy_kernels()}
_compiled = _load_compiled()
if _compiled is not None:
    KERNELS["cython"] = _compiled
_active = [KERNELS["cython" if _compiled is not None and
                   os.environ.get("CVLAB_FAST_LAYERS", "").lower() != "numpy" else "numpy"]]


FALLBACK_NOTICE_SHOWN = "CVLAB_FALLBACK_NOTICE_SHOWN"  # set once the notice was printed


def fallback_notice() -> str | None:
    """One line saying that the numpy fallback runs because the compiled kernels are missing,
    and how to build them; None when they are built (or CVLAB_FAST_LAYERS=numpy chose it)."""
    if _compiled is not None or os.environ.get("CVLAB_FAST_LAYERS", "").lower() == "numpy":
        return None
    return ("the compiled fast layers (cvlab.ext) are not built: the numpy fallback runs "
            "instead (same results, slower); build them with `make install` or "
            "`pip install -e .` (needs a C compiler)")


def announce_fallback(printer: Callable[[str], object]) -> None:
    """Print fallback_notice() through `printer` once: once per process, and not at all in a
    process whose parent (a sweep's launcher) showed it already (the environment says so)."""
    notice = fallback_notice()
    if notice is not None and not os.environ.get(FALLBACK_NOTICE_SHOWN):
        printer(notice)
        os.environ[FALLBACK_NOTICE_SHOWN] = "1"  # inherited by the processes started later


def implementation() -> str:
    """'cython' when the compiled extension is in use, 'numpy' for the fallback."""
    return _active[0].name


def available_implementations() -> list[str]:
    return list(KERNELS)


@contextlib.contextmanager
def use_implementation(name: str) -> Iterator[None]:
    """Run the fast layers with the given kernels ('cython' or 'numpy') inside the block."""
    if name not in KERNELS:
        raise ValueError(f"fast-layer implementation {name!r} is not available; "
                         f"available: {', '.join(KERNELS)}")
    _active.insert(0, KERNELS[name])
    try:
        yield
    finally:
        _active.pop(0)


def kernels() -> SimpleNamespace:
    """The kernels in use (see implementation())."""
    return _active[0]


def _float_array(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """a as a C-contiguous array of `dtype` (no copy when it already is one)."""
    return np.ascontiguousarray(a, dtype=dtype)


def _float_dtype(*arrays: np.ndarray) -> np.dtype:
    dtype = np.result_type(*arrays)
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


# The images are processed in blocks whose columns take at most this many bytes, so that a
# block's im2col output stays in the CPU's L2 cache while its GEMMs read it: on a memory-bound
# machine writing and re-reading one 30-60 MB column matrix costs more than the GEMM itself
# (the whole-batch GEMMs of the ThreeLayerConvNet layer ran 5x slower than the same FLOPs in
# cache-sized blocks; on the course's shape 256 KiB blocks beat 4 MiB ones 2-4x).
# A block of one image (the ThreeLayerConvNet layer: 0.6 MB of columns per image in float32)
# needs no transposes: its GEMM output (F, H'*W') is already the layout of out[n], as in
# Caffe's per-image im2col. The blocks depend on the shapes only, never on the thread count.
CHUNK_BYTES = 256 << 10

# Below this many multiply-adds a layer runs in the calling thread: handing work to the other
# threads (~50 us) would cost more than it saves (gradient checks call tiny convs thousands of
# times).
PARALLEL_MIN_MACS = 10_000_000

_scratch_buffers = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A C-contiguous work array of the calling thread, reused by later calls with the same
    name (contents undefined). The layers' temporaries, allocated once per thread."""
    try:
        buffers = _scratch_buffers.buffers
    except AttributeError:
        buffers = _scratch_buffers.buffers = {}
    size = math.prod(shape)
    buffer = buffers.get(name)
    if buffer is None or buffer.dtype != dtype or buffer.size < size:
        buffer = buffers[name] = np.empty(max(size, 1), dtype=dtype)
    return buffer[:size].reshape(shape)


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes of one convolution: x (N, C, H, W), w (F, C, HH, WW), out (N, F, H', W');
    K = C * HH * WW rows and P = H' * W' columns per image in im2col's layout; the images are
    processed in blocks of `chunk`."""

    N: int
    C: int
    H: int
    W: int
    F: int
    HH: int
    WW: int
    stride: int
    pad: int
    H_out: int
    W_out: int
    chunk: int

    @property
    def K(self) -> int:
        return self.C * self.HH * self.WW

    @property
    def P(self) -> int:
        return self.H_out * self.W_out

    @property
    def blocks(self) -> list[tuple[int, int]]:
        return [(start, min(self.N, start + self.chunk)) for start in range(0, self.N, self.chunk)]

    @property
    def macs(self) -> int:
        return self.N * self.F * self.K * self.P


def conv_geometry(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, conv_param: dict,
                  itemsize: int) -> ConvGeometry:
    """Validate a convolution (ValueError naming the shapes) and describe it."""
    stride, pad, N, F, H_out, W_out = conv_output_shape(x, w, b, conv_param)
    _, C, H, W = x.shape
    _, _, HH, WW = w.shape
    chunk = max(1, min(N, CHUNK_BYTES // max(1, C * HH * WW * H_out * W_out * itemsize)))
    return ConvGeometry(N, C, H, W, F, HH, WW, stride, pad, H_out, W_out, chunk)


def im2col_block(kernels: SimpleNamespace, x: np.ndarray, g: ConvGeometry, start: int,
                 stop: int) -> np.ndarray:
    """im2col(x[start:stop]) (K, n * P) in the calling thread's scratch buffer."""
    cols = scratch("cols", (g.K, (stop - start) * g.P), x.dtype)
    return kernels.im2col(x[start:stop], g.HH, g.WW, g.pad, g.stride, g.H_out, g.W_out,
                          out=cols)


def for_each_block(g: ConvGeometry, work) -> None:
    """work(i, start, stop) for every block i of images, split between the policy's threads
    when the convolution is large enough."""
    blocks = g.blocks
    if g.macs >= PARALLEL_MIN_MACS:
        threads.for_each(len(blocks), lambda i: work(i, *blocks[i]))
    else:
        for i, (start, stop) in enumerate(blocks):
            work(i, start, stop)


def conv_forward_fast(x: np.ndarray, w: np.ndarray, b: np.ndarray,
                      conv_param: dict) -> tuple[np.ndarray, tuple]:
    """Fast conv_forward_naive: x (N, C, H, W), w (F, C, HH, WW), b (F,),
    conv_param 'stride', 'pad' -> (out (N, F, H', W'), cache).

    Per block of images: cols = im2col(x[block]) (C*HH*WW, n*H'*W') and one GEMM
    w (F, C*HH*WW) @ cols, written to out (N, F, H', W') with the bias.
    """
    dtype = _float_dtype(x, w)
    g = conv_geometry(x, w, b, conv_param, dtype.itemsize)
    kernels = _active[0]
    x = _float_array(x, dtype)
    w_rows = _float_array(w, dtype).reshape(g.F, -1)
    bias = np.asarray(b, dtype=dtype).reshape(1, g.F, 1, 1)
    out = np.empty((g.N, g.F, g.H_out, g.W_out), dtype=dtype)

    def work(_: int, start: int, stop: int) -> None:
        cols = im2col_block(kernels, x, g, start, stop)
        count = stop - start
        if count == 1:  # (F, H'*W') is already the layout of out[start]
            np.matmul(w_rows, cols, out=out[start].reshape(g.F, g.P))
            out[start] += bias[0]
        else:
            rows = np.matmul(w_rows, cols, out=scratch("rows", (g.F, count * g.P), dtype))
            np.add(rows.reshape(g.F, count, g.H_out, g.W_out).transpose(1, 0, 2, 3), bias,
                   out=out[start:stop])

    for_each_block(g, work)
    return out, (x, w, b, conv_param)


def conv_backward_fast(dout: np.ndarray, cache: tuple,
                       compute_dx: bool = True) -> tuple[np.ndarray | None, np.ndarray,
                                                         np.ndarray]:
    """Fast conv_backward_naive: dout (N, F, H', W') -> (dx, dw, db) shaped like x, w, b.

    compute_dx=False skips the input gradient (dx is None): for a first layer, whose input
    gradient nobody uses, that saves a GEMM and the col2im (see conv_backward_blocks).
    """
    x, w, b, conv_param = cache
    dtype = x.dtype
    g = conv_geometry(x, w, b, conv_param, dtype.itemsize)
    if np.shape(dout) != (g.N, g.F, g.H_out, g.W_out):
        raise ValueError(f"conv backward: dout {np.shape(dout)} must have the forward's output "
                         f"shape {(g.N, g.F, g.H_out, g.W_out)}")
    dout = _float_array(dout, dtype)

    def dout_rows(start: int, stop: int) -> np.ndarray:
        count = stop - start
        if count == 1:
            return dout[start].reshape(g.F, g.P)
        rows = scratch("dout_rows", (g.F, count * g.P), dtype)
        # (F, n * H' * W'): the layout of the forward's GEMM output
        rows.reshape(g.F, count, g.H_out, g.W_out)[...] = dout[start:stop].transpose(1, 0, 2, 3)
        return rows

    dx, dw = conv_backward_blocks(g, x, w, dout_rows, compute_dx)
    db = dout.sum(axis=(0, 2, 3)).astype(np.result_type(b, dtype), copy=False)
    return dx, dw, db


def conv_backward_blocks(g: ConvGeometry, x: np.ndarray, w: np.ndarray,
                         dout_rows: Callable[[int, int], np.ndarray],
                         compute_dx: bool) -> tuple[np.ndarray | None, np.ndarray]:
    """dx (unless not compute_dx) and dw of a convolution, block by block of images:
    dout_rows(start, stop) gives the block's output gradient as (F, n * H' * W') rows, then
    cols = im2col(x[block]) again (cheaper than keeping the whole column matrix),
    dw.T (block) = cols @ rows.T and dcols = w.T @ rows, col2im(dcols) into dx."""
    kernels = _active[0]
    dtype = x.dtype
    w_rows_t = _float_array(w, dtype).reshape(g.F, -1).T
    dx = np.empty((g.N, g.C, g.H, g.W), dtype=dtype) if compute_dx else None
    # dw transposed, one slot per block: cols @ rows.T is the faster GEMM layout for this
    # long reduction (measured 1.5x over rows @ cols.T)
    dw_parts = np.empty((len(g.blocks), g.K, g.F), dtype=dtype)

    def work(i: int, start: int, stop: int) -> None:
        rows = dout_rows(start, stop)
        cols = im2col_block(kernels, x, g, start, stop)
        np.matmul(cols, rows.T, out=dw_parts[i])
        if dx is not None:
            dcols = np.matmul(w_rows_t, rows, out=scratch("dcols", cols.shape, dtype))
            kernels.col2im(dcols, stop - start, g.C, g.H, g.W, g.HH, g.WW, g.pad, g.stride,
                           g.H_out, g.W_out, out=dx[start:stop])

    for_each_block(g, work)
    dw = dw_parts[0] if len(g.blocks) == 1 else dw_parts.sum(axis=0)
    return dx, np.ascontiguousarray(dw.T).reshape(w.shape)


def max_pool_forward_fast(x: np.ndarray, pool_param: dict) -> tuple[np.ndarray, tuple]:
    """Fast max_pool_forward_naive: x (N, C, H, W), pool_param 'pool_height', 'pool_width',
    'stride' -> (out (N, C, H', W'), cache). Any window and stride, overlapping or not."""
    pool_height, pool_width, stride, H_out, W_out = pool_output_shape(x, pool_param)
    x = _float_array(x, _float_dtype(x))
    out, argmax = _active[0].max_pool_forward(x, pool_height, pool_width, stride, H_out, W_out)
    return out, (x.shape, (pool_height, pool_width, stride), argmax)


def max_pool_backward_fast(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Fast max_pool_backward_naive: dout (N, C, H', W') -> dx (N, C, H, W)."""
    (_, _, H, W), pool, argmax = cache
    if np.shape(dout) != argmax.shape:
        raise ValueError(f"max pool backward: dout {np.shape(dout)} must have the forward's "
                         f"output shape {argmax.shape}")
    dout = _float_array(dout, _float_dtype(dout))
    return _active[0].max_pool_backward(dout, argmax, H, W, *pool)
