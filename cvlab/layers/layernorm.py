"""Layer normalization: each sample normalized over its own features (no running statistics)."""

from __future__ import annotations

import numpy as np

from cvlab.layers._validate import check_feature_params


def layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      ln_param: dict) -> tuple[np.ndarray, tuple]:
    """Layer normalization; identical in train and test mode.

    Inputs:
    - x: (N, D); gamma, beta: (D,)
    - ln_param: may hold 'eps' (1e-5); any 'mode' is ignored

    Returns (out (N, D), cache).
    """
    eps = ln_param.get("eps", 1e-5)
    check_feature_params(x, gamma, beta, "layernorm")
    mean = x.mean(axis=1, keepdims=True)
    centered = x - mean
    var = (centered**2).mean(axis=1, keepdims=True)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = centered * inv_std
    out = gamma * x_hat + beta
    return out, (x_hat, inv_std, gamma)


def layernorm_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Backward of layernorm_forward.

    Inputs: dout (N, D), cache. Returns (dx (N, D), dgamma (D,), dbeta (D,)).
    """
    x_hat, inv_std, gamma = cache
    D = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx = (inv_std / D) * (D * dx_hat - dx_hat.sum(axis=1, keepdims=True)
                          - x_hat * (dx_hat * x_hat).sum(axis=1, keepdims=True))
    return dx, dgamma, dbeta
