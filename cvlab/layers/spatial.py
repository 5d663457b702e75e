"""Normalization of image feature maps (N, C, H, W): spatial batchnorm and group norm."""

from __future__ import annotations

import numpy as np

from cvlab.layers._validate import check_nonempty
from cvlab.layers.batchnorm import batchnorm_backward_alt, batchnorm_forward


def _to_rows(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N * H * W, C)."""
    N, C, H, W = x.shape
    return x.transpose(0, 2, 3, 1).reshape(-1, C)


def _from_rows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(N * H * W, C) -> (N, C, H, W), C-contiguous."""
    N, C, H, W = shape
    return np.ascontiguousarray(rows.reshape(N, H, W, C).transpose(0, 3, 1, 2))


def spatial_batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                              bn_param: dict) -> tuple[np.ndarray, tuple | None]:
    """Batch normalization per channel, with statistics over N, H and W.

    Inputs: x (N, C, H, W); gamma, beta (C,); bn_param as for batchnorm_forward
    ('mode', 'eps', 'momentum', running_mean/running_var of shape (C,), written back).
    Returns (out (N, C, H, W), cache).
    """
    if np.ndim(x) != 4:
        raise ValueError(f"spatial batchnorm expects x of shape (N, C, H, W), got {np.shape(x)}")
    if bn_param.get("mode") == "train":
        N, _, H, W = x.shape
        check_nonempty("spatial batchnorm (train mode)", f"x {x.shape}", N * H * W)
    out_rows, cache = batchnorm_forward(_to_rows(x), gamma, beta, bn_param)
    return _from_rows(out_rows, x.shape), cache


def spatial_batchnorm_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """Backward of spatial_batchnorm_forward: dout (N, C, H, W) -> (dx, dgamma (C,), dbeta (C,))."""
    dx_rows, dgamma, dbeta = batchnorm_backward_alt(_to_rows(dout), cache)
    return _from_rows(dx_rows, dout.shape), dgamma, dbeta


def spatial_groupnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, G: int,
                              gn_param: dict) -> tuple[np.ndarray, tuple]:
    """Group normalization: the C channels split into G groups; statistics per (sample, group).

    Inputs: x (N, C, H, W); gamma, beta (1, C, 1, 1); G groups (C divisible by G);
    gn_param may hold 'eps' (1e-5). Same in train and test mode.
    Returns (out (N, C, H, W), cache).
    """
    eps = gn_param.get("eps", 1e-5)
    if np.ndim(x) != 4:
        raise ValueError(f"spatial groupnorm expects x of shape (N, C, H, W), got {np.shape(x)}")
    N, C, H, W = x.shape
    if G < 1 or C % G != 0:
        raise ValueError(f"spatial groupnorm: C={C} channels (x {x.shape}) cannot be split "
                         f"into G={G} equal groups")
    if np.shape(gamma) != (1, C, 1, 1) or np.shape(beta) != (1, C, 1, 1):
        raise ValueError(f"spatial groupnorm: gamma {np.shape(gamma)} and beta {np.shape(beta)} "
                         f"must have shape (1, C, 1, 1) = (1, {C}, 1, 1) for x {x.shape}")
    groups = x.reshape(N, G, C // G * H * W)
    mean = groups.mean(axis=2, keepdims=True)
    centered = groups - mean
    var = (centered**2).mean(axis=2, keepdims=True)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (centered * inv_std).reshape(x.shape)
    out = gamma * x_hat + beta
    return out, (x_hat, inv_std, gamma, G)


def spatial_groupnorm_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """Backward of spatial_groupnorm_forward.

    Inputs: dout (N, C, H, W), cache.
    Returns (dx (N, C, H, W), dgamma (1, C, 1, 1), dbeta (1, C, 1, 1)).
    """
    x_hat, inv_std, gamma, G = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=(0, 2, 3), keepdims=True)
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3), keepdims=True)
    dx_hat = (dout * gamma).reshape(N, G, -1)
    x_hat_groups = x_hat.reshape(N, G, -1)
    M = dx_hat.shape[2]
    dx = (inv_std / M) * (M * dx_hat - dx_hat.sum(axis=2, keepdims=True)
                          - x_hat_groups * (dx_hat * x_hat_groups).sum(axis=2, keepdims=True))
    return dx.reshape(dout.shape), dgamma, dbeta
