"""Convenience "sandwich" layers: common sequences of layers as one forward/backward pair."""

from __future__ import annotations

import numpy as np

from cvlab.layers.affine import affine_backward, affine_forward, relu_backward, relu_forward
from cvlab.layers.batchnorm import batchnorm_backward_alt, batchnorm_forward
from cvlab.layers.conv_relu_pool import (
    conv_relu_pool_backward_fused,
    conv_relu_pool_forward_fused,
    fused_kernels_fit,
)
from cvlab.layers.dropout import dropout_backward, dropout_forward
from cvlab.layers.fast import (
    conv_backward_fast,
    conv_forward_fast,
    max_pool_backward_fast,
    max_pool_forward_fast,
)
from cvlab.layers.layernorm import layernorm_backward, layernorm_forward
from cvlab.layers.spatial import spatial_batchnorm_backward, spatial_batchnorm_forward

NORMALIZATIONS = (None, "batchnorm", "layernorm")


def affine_relu_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Affine then ReLU. x (N, d_1..d_k), w (D, M), b (M,) -> (out (N, M), cache)."""
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """Backward of affine_relu_forward: dout (N, M) -> (dx, dw, db)."""
    fc_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return affine_backward(da, fc_cache)


def affine_norm_relu_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray,
                             gamma: np.ndarray | None, beta: np.ndarray | None,
                             norm_param: dict | None, normalization: str | None = "batchnorm",
                             dropout_param: dict | None = None) -> tuple[np.ndarray, tuple]:
    """Affine - [batchnorm | layernorm] - ReLU - [dropout], the hidden block of FullyConnectedNet.

    Inputs: x (N, d_1..d_k), w (D, M), b (M,); gamma, beta (M,) and norm_param (bn_param or
    ln_param) when `normalization` is 'batchnorm' or 'layernorm' (ignored when it is None);
    dropout_param ('p', 'mode', optional 'seed') to add dropout, None for none.
    Returns (out (N, M), cache).
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization {normalization!r} is not one of {NORMALIZATIONS}")
    a, fc_cache = affine_forward(x, w, b)
    norm_cache = None
    if normalization == "batchnorm":
        a, norm_cache = batchnorm_forward(a, gamma, beta, norm_param)
    elif normalization == "layernorm":
        a, norm_cache = layernorm_forward(a, gamma, beta, norm_param)
    out, relu_cache = relu_forward(a)
    dropout_cache = None
    if dropout_param is not None:
        out, dropout_cache = dropout_forward(out, dropout_param)
    return out, (fc_cache, normalization, norm_cache, relu_cache, dropout_cache)


def affine_norm_relu_backward(dout: np.ndarray, cache: tuple) -> tuple:
    """Backward of affine_norm_relu_forward: dout (N, M) -> (dx, dw, db, dgamma, dbeta);
    dgamma and dbeta are None without normalization."""
    fc_cache, normalization, norm_cache, relu_cache, dropout_cache = cache
    if dropout_cache is not None:
        dout = dropout_backward(dout, dropout_cache)
    da = relu_backward(dout, relu_cache)
    dgamma = dbeta = None
    if normalization == "batchnorm":
        da, dgamma, dbeta = batchnorm_backward_alt(da, norm_cache)
    elif normalization == "layernorm":
        da, dgamma, dbeta = layernorm_backward(da, norm_cache)
    dx, dw, db = affine_backward(da, fc_cache)
    return dx, dw, db, dgamma, dbeta


def conv_relu_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray,
                      conv_param: dict) -> tuple[np.ndarray, tuple]:
    """Convolution (fast) then ReLU. x (N, C, H, W), w (F, C, HH, WW), b (F,) -> (out, cache)."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout: np.ndarray, cache: tuple, compute_dx: bool = True
                       ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Backward of conv_relu_forward: dout (N, F, H', W') -> (dx, dw, db); dx is None with
    compute_dx=False (a first layer, whose input gradient nobody uses)."""
    conv_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return conv_backward_fast(da, conv_cache, compute_dx=compute_dx)


def conv_relu_pool_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict,
                           pool_param: dict) -> tuple[np.ndarray, tuple]:
    """Convolution (fast) - ReLU - max pool (fast). Returns (out (N, F, H'', W''), cache).

    The three run as fused kernels (cvlab.layers.conv_relu_pool) with the same results; a pool
    window of more than 256 positions runs them one after the other.
    """
    if fused_kernels_fit(pool_param):
        out, fused_cache = conv_relu_pool_forward_fused(x, w, b, conv_param, pool_param)
        return out, ("fused", fused_cache)
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, ("layers", (conv_cache, relu_cache, pool_cache))


def conv_relu_pool_backward(dout: np.ndarray, cache: tuple, compute_dx: bool = True
                            ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Backward of conv_relu_pool_forward -> (dx, dw, db); dx is None with compute_dx=False
    (a first layer, whose input gradient nobody uses: saves a GEMM and a col2im)."""
    kind, inner = cache
    if kind == "fused":
        return conv_relu_pool_backward_fused(dout, inner, compute_dx=compute_dx)
    conv_cache, relu_cache, pool_cache = inner
    ds = max_pool_backward_fast(dout, pool_cache)
    da = relu_backward(ds, relu_cache, out=ds)
    return conv_backward_fast(da, conv_cache, compute_dx=compute_dx)


def conv_bn_relu_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, gamma: np.ndarray,
                         beta: np.ndarray, conv_param: dict,
                         bn_param: dict) -> tuple[np.ndarray, tuple]:
    """Convolution (fast) - spatial batchnorm - ReLU; gamma, beta (F,). Returns (out, cache)."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout: np.ndarray, cache: tuple) -> tuple:
    """Backward of conv_bn_relu_forward -> (dx, dw, db, dgamma, dbeta)."""
    conv_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = spatial_batchnorm_backward(dan, bn_cache)
    dx, dw, db = conv_backward_fast(da, conv_cache)
    return dx, dw, db, dgamma, dbeta
