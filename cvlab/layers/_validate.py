"""Shape checks shared by the layers: bad input raises ValueError naming the shapes."""

from __future__ import annotations

import numpy as np


def conv_output_shape(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                      conv_param: dict) -> tuple[int, int, int, int, int, int]:
    """Validate a convolution's inputs; return (stride, pad, N, F, H_out, W_out).

    x (N, C, H, W), w (F, C, HH, WW), b (F,). Raises ValueError with the shapes when the
    channels disagree, the filter does not fit in the padded input, or stride/pad are invalid.
    """
    stride, pad = conv_param.get("stride", 1), conv_param.get("pad", 0)
    if np.ndim(x) != 4 or np.ndim(w) != 4:
        raise ValueError(f"conv expects x of shape (N, C, H, W) and w of shape (F, C, HH, WW), "
                         f"got x {np.shape(x)} and w {np.shape(w)}")
    N, C, H, W = x.shape
    F, Cw, HH, WW = w.shape
    if Cw != C:
        raise ValueError(f"conv channel mismatch: x {x.shape} has C={C} channels but "
                         f"w {w.shape} expects C={Cw}")
    if b is not None and np.shape(b) != (F,):
        raise ValueError(f"conv bias b {np.shape(b)} must have shape (F,) = ({F},) for w {w.shape}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"conv stride must be a positive integer, got stride={stride!r} "
                         f"for x {x.shape}, w {w.shape}")
    if int(pad) != pad or pad < 0:
        raise ValueError(f"conv pad must be a non-negative integer, got pad={pad!r} "
                         f"for x {x.shape}, w {w.shape}")
    stride, pad = int(stride), int(pad)
    if HH > H + 2 * pad or WW > W + 2 * pad:
        raise ValueError(f"conv filter {HH}x{WW} (w {w.shape}) is larger than the padded input "
                         f"{H + 2 * pad}x{W + 2 * pad} (x {x.shape}, pad={pad})")
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    return stride, pad, N, F, H_out, W_out


def pool_output_shape(x: np.ndarray, pool_param: dict) -> tuple[int, int, int, int, int]:
    """Validate a max pool's inputs; return (pool_height, pool_width, stride, H_out, W_out)."""
    pool_height = pool_param.get("pool_height", 2)
    pool_width = pool_param.get("pool_width", 2)
    stride = pool_param.get("stride", 2)
    if np.ndim(x) != 4:
        raise ValueError(f"max pool expects x of shape (N, C, H, W), got {np.shape(x)}")
    for key, value in (("pool_height", pool_height), ("pool_width", pool_width),
                       ("stride", stride)):
        if int(value) != value or value < 1:
            raise ValueError(f"max pool {key} must be a positive integer, got {value!r} "
                             f"for x {x.shape}")
    pool_height, pool_width, stride = int(pool_height), int(pool_width), int(stride)
    _, _, H, W = x.shape
    if pool_height > H or pool_width > W:
        raise ValueError(f"max pool window {pool_height}x{pool_width} is larger than the input "
                         f"x {x.shape}")
    H_out = 1 + (H - pool_height) // stride
    W_out = 1 + (W - pool_width) // stride
    return pool_height, pool_width, stride, H_out, W_out


def check_feature_params(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, what: str) -> None:
    """x (N, D) with gamma, beta (D,)."""
    if np.ndim(x) != 2:
        raise ValueError(f"{what} expects x of shape (N, D), got {np.shape(x)}")
    D = x.shape[1]
    if np.shape(gamma) != (D,) or np.shape(beta) != (D,):
        raise ValueError(f"{what}: gamma {np.shape(gamma)} and beta {np.shape(beta)} must have "
                         f"shape (D,) = ({D},) for x {x.shape}")
