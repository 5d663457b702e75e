"""Fast convolution and max pooling: same signatures and results as the naive layers.

Convolution is im2col + GEMM: the columns of a block of images (the whole batch when they
fit in CHUNK_BYTES, else cache-sized blocks of whole images) go through one large GEMM each
(forward: w (F, C*HH*WW) @ cols; backward: one GEMM for dw and one for the column gradients,
then col2im); no Python loop over positions or filters, no np.add.at. The images are split
between as many worker threads as numpy's BLAS has, each with single-threaded BLAS.
Max pooling records the index of each window's first maximum and routes the gradient there.
The kernels come from the compiled extension cvlab.ext (Cython) when it is built, otherwise
from the pure-numpy fallback cvlab.layers.fast_numpy; `implementation()` says which is in
use. float32 stays float32.

Set the environment variable CVLAB_FAST_LAYERS=numpy to force the fallback, or use the
context manager `use_implementation("numpy" | "cython")`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from types import ModuleType, SimpleNamespace

import numpy as np

from cvlab.layers import fast_numpy
from cvlab.layers._validate import conv_output_shape, pool_output_shape


def _load_compiled() -> SimpleNamespace | None:
    try:
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
    )


def _numpy_kernels(module: ModuleType = fast_numpy) -> SimpleNamespace:
    return SimpleNamespace(name="numpy", im2col=module.im2col, col2im=module.col2im,
                           max_pool_forward=module.max_pool_forward,
                           max_pool_backward=module.max_pool_backward)


KERNELS: dict[str, SimpleNamespace] = {"numpy": _numpy_kernels()}
_compiled = _load_compiled()
if _compiled is not None:
    KERNELS["cython"] = _compiled
_active = [KERNELS["cython" if _compiled is not None and
                   os.environ.get("CVLAB_FAST_LAYERS", "").lower() != "numpy" else "numpy"]]


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


def _float_array(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """a as a C-contiguous array of `dtype` (no copy when it already is one)."""
    return np.ascontiguousarray(a, dtype=dtype)


def _float_dtype(*arrays: np.ndarray) -> np.dtype:
    dtype = np.result_type(*arrays)
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


# Each worker processes its images in chunks whose columns take at most this many bytes, so
# that a chunk's im2col output stays in the CPU's L2 cache while its GEMMs read it: on a
# memory-bound machine writing and re-reading one 30-60 MB column matrix costs more than the
# GEMM itself (the whole-batch GEMMs of the ThreeLayerConvNet layer ran 5x slower than the same
# FLOPs in cache-sized chunks; on the course's shape 256 KiB chunks beat 4 MiB ones 2-4x).
# A chunk of one image (the ThreeLayerConvNet layer: 0.6 MB of columns per image in float32)
# needs no transposes: its GEMM output (F, H'*W') is already the layout of out[n], as in
# Caffe's per-image im2col.
CHUNK_BYTES = 256 << 10

_blas: list = []  # the threadpoolctl controller of numpy's BLAS, created on first use


def _blas_controller():
    if not _blas:
        try:
            from threadpoolctl import ThreadpoolController

            _blas.append(ThreadpoolController().select(user_api="blas"))
        except Exception:  # no threadpoolctl or no BLAS it knows: work in the calling thread
            _blas.append(None)
    return _blas[0]


def _blas_threads() -> int:
    controller = _blas_controller()
    if controller is None or not controller.lib_controllers:
        return 1
    return max(lib.num_threads for lib in controller.lib_controllers)


# Below this many multiply-adds a conv runs in the calling thread: starting worker threads
# (~50 us each) would cost more than it saves (gradient checks call tiny convs thousands of
# times).
PARALLEL_MIN_MACS = 10_000_000


def _in_parallel(N: int, work: Callable[[int, int], object], macs: int) -> list:
    """Run work(start, stop) on contiguous parts of range(N), one part per BLAS thread.

    Each part runs in its own thread with BLAS single-threaded (the im2col/col2im kernels and
    the GEMMs release the GIL), so the workers never wait on each other until the end: many
    small multi-threaded GEMM calls each synchronize all BLAS threads, which on a busy machine
    costs more than the GEMMs. With one BLAS thread, one image or less than PARALLEL_MIN_MACS
    multiply-adds of work it is a plain call.
    """
    workers = min(_blas_threads(), N) if macs >= PARALLEL_MIN_MACS else 1
    if workers <= 1:
        return [work(0, N)]
    bounds = [N * i // workers for i in range(workers + 1)]
    results: list = [None] * workers
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = work(bounds[i], bounds[i + 1])
        except BaseException as err:  # re-raised in the calling thread below
            errors.append(err)

    with _blas_controller().limit(limits=1):
        threads = [threading.Thread(target=run, args=(i,)) for i in range(1, workers)]
        for thread in threads:
            thread.start()
        run(0)
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return results


def _images_per_chunk(N: int, cols_per_image: int, itemsize: int) -> int:
    return max(1, min(N, CHUNK_BYTES // max(1, cols_per_image * itemsize)))


def _im2col_chunks(
    kernels: ModuleType | SimpleNamespace, x: np.ndarray, first: int, last: int, chunk: int,
    HH: int, WW: int, pad: int,
    stride: int, H_out: int, W_out: int,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, cols) for images first..last of x (N, C, H, W) in chunks of `chunk`:
    cols = im2col(x[start:stop]) as (C * HH * WW, n * H' * W'), written into one reused buffer
    (valid until the next chunk)."""
    K, P = x.shape[1] * HH * WW, H_out * W_out
    cols_buffer = np.empty(K * chunk * P, dtype=x.dtype)
    for start in range(first, last, chunk):
        stop = min(last, start + chunk)
        width = (stop - start) * P
        cols = kernels.im2col(x[start:stop], HH, WW, pad, stride, H_out, W_out,
                              out=cols_buffer[:K * width].reshape(K, width))
        yield start, stop, cols


def conv_forward_fast(x: np.ndarray, w: np.ndarray, b: np.ndarray,
                      conv_param: dict) -> tuple[np.ndarray, tuple]:
    """Fast conv_forward_naive: x (N, C, H, W), w (F, C, HH, WW), b (F,),
    conv_param 'stride', 'pad' -> (out (N, F, H', W'), cache).

    Per chunk of images: cols = im2col(x[chunk]) (C*HH*WW, n*H'*W') and one GEMM
    w (F, C*HH*WW) @ cols, written to out (N, F, H', W') with the bias.
    """
    stride, pad, N, F, H_out, W_out = conv_output_shape(x, w, b, conv_param)
    _, C, HH, WW = w.shape
    dtype = _float_dtype(x, w)
    kernels = _active[0]
    x = _float_array(x, dtype)
    w_rows = _float_array(w, dtype).reshape(F, -1)
    bias = np.asarray(b, dtype=dtype).reshape(1, F, 1, 1)
    K, P = C * HH * WW, H_out * W_out
    out = np.empty((N, F, H_out, W_out), dtype=dtype)

    def work(first: int, last: int) -> None:
        chunk = _images_per_chunk(last - first, K * P, dtype.itemsize)
        gemm_buffer = np.empty(F * chunk * P, dtype=dtype) if chunk > 1 else None
        for start, stop, cols in _im2col_chunks(kernels, x, first, last, chunk, HH, WW, pad,
                                                stride, H_out, W_out):
            count = stop - start
            if count == 1:  # (F, H'*W') is already the layout of out[start]
                np.matmul(w_rows, cols, out=out[start].reshape(F, P))
                out[start] += bias[0]
            else:
                rows = np.matmul(w_rows, cols,
                                 out=gemm_buffer[:F * count * P].reshape(F, count * P))
                np.add(rows.reshape(F, count, H_out, W_out).transpose(1, 0, 2, 3), bias,
                       out=out[start:stop])

    _in_parallel(N, work, macs=N * F * K * P)
    return out, (x, w, b, conv_param)


def conv_backward_fast(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Fast conv_backward_naive: dout (N, F, H', W') -> (dx, dw, db) shaped like x, w, b.

    Per chunk of images: cols = im2col(x[chunk]) again (cheaper than keeping the whole column
    matrix), dw.T += cols @ dout_rows.T and dcols = w.T @ dout_rows (two GEMMs), then
    col2im(dcols) into dx.
    """
    x, w, b, conv_param = cache
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    stride, pad, _, _, H_out, W_out = conv_output_shape(x, w, b, conv_param)
    if np.shape(dout) != (N, F, H_out, W_out):
        raise ValueError(f"conv backward: dout {np.shape(dout)} must have the forward's output "
                         f"shape {(N, F, H_out, W_out)}")
    dtype = x.dtype
    kernels = _active[0]
    dout = _float_array(dout, dtype)
    w_rows_t = _float_array(w, dtype).reshape(F, -1).T
    K, P = C * HH * WW, H_out * W_out
    dx = np.empty((N, C, H, W), dtype=dtype)

    def work(first: int, last: int) -> np.ndarray:
        chunk = _images_per_chunk(last - first, K * P, dtype.itemsize)
        # dw transposed: cols @ dout_rows.T is the faster GEMM layout for this long reduction
        # (measured 1.5x over dout_rows @ cols.T)
        dw_columns = np.zeros((K, F), dtype=dtype)
        dcols_buffer = np.empty(K * chunk * P, dtype=dtype)
        dout_buffer = np.empty(F * chunk * P, dtype=dtype) if chunk > 1 else None
        for start, stop, cols in _im2col_chunks(kernels, x, first, last, chunk, HH, WW, pad,
                                                stride, H_out, W_out):
            count = stop - start
            if count == 1:
                dout_rows = dout[start].reshape(F, P)
            else:  # (F, n * H' * W'): the layout of the forward's GEMM output
                dout_rows = dout_buffer[:F * count * P].reshape(F, count * P)
                dout_rows.reshape(F, count, H_out, W_out)[...] = (
                    dout[start:stop].transpose(1, 0, 2, 3))
            dw_columns += cols @ dout_rows.T
            dcols = np.matmul(w_rows_t, dout_rows,
                              out=dcols_buffer[:K * count * P].reshape(K, count * P))
            kernels.col2im(dcols, count, C, H, W, HH, WW, pad, stride, H_out, W_out,
                           out=dx[start:stop])
        return dw_columns

    dw_columns = sum(_in_parallel(N, work, macs=2 * N * F * K * P))
    db = dout.sum(axis=(0, 2, 3)).astype(np.result_type(b, dtype), copy=False)
    return dx, np.ascontiguousarray(dw_columns.T).reshape(w.shape), db


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
