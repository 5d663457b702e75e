"""Inverted dropout: units kept with probability p and scaled by 1/p at train time."""

from __future__ import annotations

import numpy as np


def dropout_forward(x: np.ndarray, dropout_param: dict) -> tuple[np.ndarray, tuple]:
    """Inverted dropout.

    Inputs:
    - x: any shape
    - dropout_param: 'p' probability of KEEPING each unit, 'mode' ('train' or 'test'),
      optional 'seed': the mask is then drawn from np.random.RandomState(seed) (the same
      mask every call) and numpy's global RNG is left untouched; without a seed the mask
      comes from numpy's global RNG as in the course.

    Train: mask = (rand(*x.shape) < p) / p, out = x * mask. Test: out = x.
    Returns (out (shape of x), cache (dropout_param, mask)).
    """
    p, mode = dropout_param["p"], dropout_param["mode"]
    if not 0 < p <= 1:
        raise ValueError(f"dropout keep probability p must be in (0, 1], got p={p!r}")
    mask = None
    if mode == "train":
        seed = dropout_param.get("seed")
        rand = np.random.RandomState(seed).rand if seed is not None else np.random.rand
        dtype = np.dtype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)
        keep = np.asarray(rand(*x.shape) < p)
        mask = keep.astype(dtype) / dtype.type(p)
        out = x * mask
    elif mode == "test":
        out = x
    else:
        raise ValueError(f"invalid dropout mode {mode!r}; expected 'train' or 'test'")
    return out, (dropout_param, mask)


def dropout_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Backward of dropout_forward: dx = dout * mask in train mode, dout in test mode."""
    _, mask = cache
    if mask is not None:  # train mode
        return dout * mask
    return dout
