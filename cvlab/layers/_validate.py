"""Shape checks shared by the layers: bad input raises ValueError naming the shapes."""

from __future__ import annotations

from typing import Any

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
    if np.ndim(x) != 2 or x.shape[1] == 0:
        raise ValueError(f"{what} expects x of shape (N, D) with D >= 1, got {np.shape(x)}")
    D = x.shape[1]
    if np.shape(gamma) != (D,) or np.shape(beta) != (D,):
        raise ValueError(f"{what}: gamma {np.shape(gamma)} and beta {np.shape(beta)} must have "
                         f"shape (D,) = ({D},) for x {x.shape}")


def shape_of(a: Any) -> tuple[int, ...]:
    """The shape of a numpy array or torch tensor as a plain tuple (for messages)."""
    return tuple(int(n) for n in np.shape(a))


def is_integer_array(a: Any) -> bool:
    """True for numpy arrays and torch tensors of an integer dtype (bool excluded)."""
    dtype = getattr(a, "dtype", None)
    if isinstance(dtype, np.dtype):
        return np.issubdtype(dtype, np.integer)
    # torch.dtype (no torch import here: the numpy layers must not need it)
    return (dtype is not None and hasattr(dtype, "is_floating_point")
            and not dtype.is_floating_point and not dtype.is_complex
            and str(dtype) != "torch.bool")


def check_nonempty(what: str, described: str, count: int) -> None:
    """Refuse an empty batch where it would be averaged over (a loss, batch statistics)."""
    if count == 0:
        raise ValueError(f"{what}: empty batch ({described}); it needs N >= 1 samples")


def check_indices(what: str, name: str, ids: Any, size: int, context: str) -> None:
    """`ids` must be integers in [0, size): class labels, word ids. One min/max pass.

    `name` says what they are ("labels y", "word ids x"), `context` which shapes set the
    range (e.g. "scores x (N, C) = (4, 10)").
    """
    if not is_integer_array(ids):
        dtype = getattr(ids, "dtype", type(ids).__name__)
        raise ValueError(f"{what}: {name} must be integers, got dtype {dtype} "
                         f"(shape {shape_of(ids)})")
    if np.size(ids) if isinstance(ids, np.ndarray) else ids.numel():
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= size:
            raise ValueError(f"{what}: {name} {shape_of(ids)} must lie in [0, {size}) for "
                             f"{context}, got values from {low} to {high}")


def check_class_scores(what: str, x: np.ndarray, y: np.ndarray) -> None:
    """Scores x (N, C) and labels y (N,) in [0, C), with N >= 1."""
    if np.ndim(x) != 2 or shape_of(y) != (shape_of(x)[0],):
        raise ValueError(f"{what} expects scores x of shape (N, C) and labels y of shape (N,), "
                         f"got x {shape_of(x)} and y {shape_of(y)}")
    check_nonempty(what, f"scores x {x.shape}, labels y {shape_of(y)}", x.shape[0])
    check_indices(what, "labels y", y, x.shape[1], f"scores x {x.shape} (N, C)")


def check_class_labels(what: str, X: np.ndarray, y: np.ndarray, num_classes: int) -> None:
    """A model's training batch: inputs X (N, ...) and labels y (N,) in [0, C), N >= 1."""
    X_shape = shape_of(X)
    if len(X_shape) < 1 or shape_of(y) != X_shape[:1]:
        raise ValueError(f"{what} expects inputs X of shape (N, ...) and labels y of shape "
                         f"(N,), got X {X_shape} and y {shape_of(y)}")
    check_nonempty(what, f"X {X_shape}, y {shape_of(y)}", X_shape[0])
    check_indices(what, "labels y", y, num_classes, f"a model with C = {num_classes} classes")


def check_recurrent(what: str, x: Any, h: Any, Wx: Any, Wh: Any, b: Any, gates: int = 1,
                    c: Any = None, sequence: bool = False) -> None:
    """Shapes of a recurrent layer: x (N, D) or, for a `sequence`, (N, T, D) with T >= 1,
    h (N, H), Wx (D, gates*H), Wh (H, gates*H), b (gates*H,), and c (N, H) when given."""
    g = "" if gates == 1 else str(gates)
    names = {"x": x, "h": h, "Wx": Wx, "Wh": Wh, "b": b, **({"c": c} if c is not None else {})}
    got = ", ".join(f"{name} {shape_of(value)}" for name, value in names.items())
    expected = (f"x {'(N, T, D)' if sequence else '(N, D)'}, h (N, H), Wx (D, {g}H), "
                f"Wh (H, {g}H), b ({g}H,)" + (", c (N, H)" if c is not None else ""))
    x_shape, h_shape = shape_of(x), shape_of(h)
    ok = len(x_shape) == (3 if sequence else 2) and len(h_shape) == 2
    if ok:
        N, D, H = x_shape[0], x_shape[-1], h_shape[1]
        ok = (h_shape[0] == N and shape_of(Wx) == (D, gates * H)
              and shape_of(Wh) == (H, gates * H) and shape_of(b) == (gates * H,)
              and (c is None or shape_of(c) == h_shape))
    if not ok:
        raise ValueError(f"{what} expects {expected}; got {got}")
    if sequence and x_shape[1] == 0:
        raise ValueError(f"{what}: x {x_shape} has no time steps (T = 0)")
