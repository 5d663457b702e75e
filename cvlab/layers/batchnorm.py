"""Batch normalization over the features of (N, D) inputs, with running statistics.

The running statistics never take a non-finite value from a batch: a batch whose mean or
variance is not finite (NaN or inf inputs, or an overflow) leaves them as they were (its
output is still computed, so a diverging loss shows); an empty batch in train mode raises
ValueError.
"""

from __future__ import annotations

import numpy as np

from cvlab.layers._validate import check_feature_params, check_nonempty


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      bn_param: dict) -> tuple[np.ndarray, tuple | None]:
    """Batch normalization.

    Train mode normalizes with the batch mean and (biased) variance and updates
        running_mean = momentum * running_mean + (1 - momentum) * sample_mean
        running_var  = momentum * running_var  + (1 - momentum) * sample_var
    writing both back into bn_param (zeros of shape (D,) on the first call), unless the
    batch's statistics are not finite: then the running statistics are left unchanged.
    Test mode normalizes with the running statistics.

    Inputs:
    - x: (N, D), N >= 1 in train mode; gamma, beta: (D,) scale and shift
    - bn_param: 'mode' ('train' or 'test', required), 'eps' (1e-5), 'momentum' (0.9),
      'running_mean', 'running_var' (D,)

    Returns (out (N, D), cache).
    """
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    check_feature_params(x, gamma, beta, "batchnorm")
    D = x.shape[1]
    running_mean = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(D, dtype=x.dtype))

    if mode == "train":
        check_nonempty("batchnorm (train mode)", f"x {x.shape}", x.shape[0])
        sample_mean = x.mean(axis=0)
        centered = x - sample_mean
        sample_var = (centered**2).mean(axis=0)
        std = np.sqrt(sample_var + eps)
        inv_std = 1 / std
        x_hat = centered * inv_std
        out = gamma * x_hat + beta
        if np.isfinite(sample_mean).all() and np.isfinite(sample_var).all():
            running_mean = momentum * running_mean + (1 - momentum) * sample_mean
            running_var = momentum * running_var + (1 - momentum) * sample_var
        cache = (x_hat, centered, std, inv_std, gamma)
    elif mode == "test":
        x_hat = (x - running_mean) / np.sqrt(running_var + eps)
        out = gamma * x_hat + beta
        cache = None
    else:
        raise ValueError(f"invalid batchnorm mode {mode!r}; expected 'train' or 'test'")

    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, cache


def batchnorm_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Backward of batchnorm_forward (train mode), step by step through the computation graph.

    Inputs: dout (N, D), cache from the forward.
    Returns (dx (N, D), dgamma (D,), dbeta (D,)).
    """
    x_hat, centered, std, inv_std, gamma = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    # x_hat = centered * inv_std
    dinv_std = (dx_hat * centered).sum(axis=0)
    dcentered = dx_hat * inv_std
    # inv_std = 1 / std, std = sqrt(var + eps)
    dstd = -dinv_std / std**2
    dvar = dstd * 0.5 / std
    # var = mean(centered ** 2)
    dcentered = dcentered + 2 * centered * dvar / N
    # centered = x - mean
    dmean = -dcentered.sum(axis=0)
    dx = dcentered + dmean / N
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """Backward of batchnorm_forward in the simplified closed form.

        dx = inv_std / N * (N * dx_hat - sum(dx_hat) - x_hat * sum(dx_hat * x_hat))

    Same inputs and results as batchnorm_backward, with fewer passes over the data.
    """
    x_hat, _, _, inv_std, gamma = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = (gamma * inv_std / N) * (N * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta
