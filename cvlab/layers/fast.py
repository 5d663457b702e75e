"""Fast convolution and max pooling: same signatures and results as the naive layers.

Convolution is im2col + one large GEMM (forward: w (F, C*HH*WW) @ cols; backward: one GEMM
for dw and one for the column gradients, then col2im). Max pooling records the index of each
window's first maximum and routes the gradient there. The kernels come from the compiled
extension cvlab.ext (Cython) when it is built, otherwise from the pure-numpy fallback
cvlab.layers.fast_numpy; `implementation()` says which is in use. float32 stays float32.

Set the environment variable CVLAB_FAST_LAYERS=numpy to force the fallback, or use the
context manager `use_implementation("numpy" | "cython")`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
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


def conv_forward_fast(x: np.ndarray, w: np.ndarray, b: np.ndarray,
                      conv_param: dict) -> tuple[np.ndarray, tuple]:
    """Fast conv_forward_naive: x (N, C, H, W), w (F, C, HH, WW), b (F,),
    conv_param 'stride', 'pad' -> (out (N, F, H', W'), cache)."""
    stride, pad, N, F, H_out, W_out = conv_output_shape(x, w, b, conv_param)
    _, _, HH, WW = w.shape
    dtype = _float_dtype(x, w)
    x = _float_array(x, dtype)
    w_rows = _float_array(w, dtype).reshape(F, -1)
    cols = _active[0].im2col(x, HH, WW, pad, stride, H_out, W_out)
    out_rows = w_rows @ cols  # (F, N * H' * W'): the one GEMM
    out = np.empty((N, F, H_out, W_out), dtype=dtype)
    np.add(out_rows.reshape(F, N, H_out, W_out).transpose(1, 0, 2, 3),
           np.asarray(b, dtype=dtype).reshape(1, F, 1, 1), out=out)
    return out, (x, w, b, conv_param, cols)


def conv_backward_fast(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Fast conv_backward_naive: dout (N, F, H', W') -> (dx, dw, db) shaped like x, w, b."""
    x, w, b, conv_param, cols = cache
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, F_out, H_out, W_out = dout.shape
    stride, pad = int(conv_param.get("stride", 1)), int(conv_param.get("pad", 0))
    dtype = cols.dtype
    # (F, N * H' * W'), the layout of the forward's GEMM output.
    dout_rows = _float_array(np.asarray(dout, dtype=dtype).transpose(1, 0, 2, 3), dtype)
    dout_rows = dout_rows.reshape(F, -1)
    db = dout_rows.sum(axis=1).astype(np.result_type(b, dtype), copy=False)
    dw = (dout_rows @ cols.T).reshape(w.shape)
    dcols = _float_array(w, dtype).reshape(F, -1).T @ dout_rows
    dx = _active[0].col2im(dcols, N, C, H, W, HH, WW, pad, stride, H_out, W_out)
    return dx, dw, db


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
    dout = _float_array(dout, _float_dtype(dout))
    return _active[0].max_pool_backward(dout, argmax, H, W, *pool)
