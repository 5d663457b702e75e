"""Layer-level closures for `cvlab bench layers`' comparisons with PyTorch, one framework each
(run in that framework's own process by cvlab.bench.isolated; the numpy ones never import
torch). Arguments are JSON-able: dtype names, shapes as lists, parameter dicts."""

from __future__ import annotations

import numpy as np

from cvlab.bench.steps import Step
from cvlab.layers._validate import conv_output_shape, pool_output_shape


def _arrays(dtype: str, seed: int, *shapes: list[int]) -> list[np.ndarray]:
    rng = np.random.RandomState(seed)
    return [rng.randn(*shape).astype(dtype) for shape in shapes]


def _conv_out_shape(x_shape: list[int], w_shape: list[int], conv: dict) -> list[int]:
    *_, N, F, H_out, W_out = conv_output_shape(np.empty(x_shape), np.empty(w_shape), None, conv)
    return [N, F, H_out, W_out]


def _pool_out_shape(x_shape: list[int], pool: dict) -> list[int]:
    *_, H_out, W_out = pool_output_shape(np.empty(x_shape), pool)
    return [*x_shape[:2], H_out, W_out]


def fast_conv(dtype: str, x_shape: list[int], w_shape: list[int], conv: dict, what: str,
              seed: int = 0) -> Step:
    """conv_forward_fast ("forward") or forward + conv_backward_fast ("forward_backward")."""
    from cvlab import layers as L

    x, w, b, dout = _arrays(dtype, seed, x_shape, w_shape, w_shape[:1],
                            _conv_out_shape(x_shape, w_shape, conv))
    if what == "forward":
        return lambda: L.conv_forward_fast(x, w, b, conv)

    def forward_backward() -> None:
        _, cache = L.conv_forward_fast(x, w, b, conv)
        L.conv_backward_fast(dout, cache)

    return forward_backward


def torch_conv(dtype: str, x_shape: list[int], w_shape: list[int], conv: dict, what: str,
               seed: int = 0) -> Step:
    """torch.nn.functional.conv2d forward (no autograd) or forward + backward (dx, dw, db)."""
    import torch
    import torch.nn.functional as tf

    x, w, b, dout = (torch.from_numpy(a) for a in _arrays(
        dtype, seed, x_shape, w_shape, w_shape[:1], _conv_out_shape(x_shape, w_shape, conv)))
    stride, pad = conv["stride"], conv["pad"]
    if what == "forward":
        def forward() -> None:
            with torch.no_grad():
                tf.conv2d(x, w, b, stride=stride, padding=pad)

        return forward
    for tensor in (x, w, b):
        tensor.requires_grad_(True)

    def forward_backward() -> None:
        x.grad = w.grad = b.grad = None
        tf.conv2d(x, w, b, stride=stride, padding=pad).backward(dout)

    return forward_backward


def fast_pool(dtype: str, x_shape: list[int], pool: dict, what: str, seed: int = 0) -> Step:
    """max_pool_forward_fast, or forward + max_pool_backward_fast."""
    from cvlab import layers as L

    x, dout = _arrays(dtype, seed, x_shape, _pool_out_shape(x_shape, pool))
    if what == "forward":
        return lambda: L.max_pool_forward_fast(x, pool)

    def forward_backward() -> None:
        _, cache = L.max_pool_forward_fast(x, pool)
        L.max_pool_backward_fast(dout, cache)

    return forward_backward


def torch_pool(dtype: str, x_shape: list[int], pool: dict, what: str, seed: int = 0) -> Step:
    """torch max_pool2d forward (no autograd), or forward + backward."""
    import torch
    import torch.nn.functional as tf

    x, dout = (torch.from_numpy(a) for a in _arrays(dtype, seed, x_shape,
                                                     _pool_out_shape(x_shape, pool)))
    kernel, stride = (pool["pool_height"], pool["pool_width"]), pool["stride"]
    if what == "forward":
        def forward() -> None:
            with torch.no_grad():
                tf.max_pool2d(x, kernel, stride)

        return forward
    x.requires_grad_(True)

    def forward_backward() -> None:
        x.grad = None
        tf.max_pool2d(x, kernel, stride).backward(dout)

    return forward_backward


def _crp_arrays(dtype: str, seed: int, x_shape: list[int], w_shape: list[int], conv: dict,
                pool: dict) -> list[np.ndarray]:
    pooled = _pool_out_shape(_conv_out_shape(x_shape, w_shape, conv), pool)
    x, w, b, dout = _arrays(dtype, seed, x_shape, w_shape, w_shape[:1], pooled)
    return [x, w * np.asarray(0.1, dtype), b, dout]


def fast_conv_relu_pool(dtype: str, x_shape: list[int], w_shape: list[int], conv: dict,
                        pool: dict, seed: int = 0) -> Step:
    """conv_relu_pool_forward + conv_relu_pool_backward(compute_dx=False): the first layer
    of the ThreeLayerConvNet, as its loss runs it."""
    from cvlab import layers as L

    x, w, b, dout = _crp_arrays(dtype, seed, x_shape, w_shape, conv, pool)

    def forward_backward() -> None:
        _, cache = L.conv_relu_pool_forward(x, w, b, conv, pool)
        L.conv_relu_pool_backward(dout, cache, compute_dx=False)

    return forward_backward


def torch_conv_relu_pool(dtype: str, x_shape: list[int], w_shape: list[int], conv: dict,
                         pool: dict, seed: int = 0) -> Step:
    """conv2d - relu - max_pool2d forward and backward for w and b (the input needs none)."""
    import torch
    import torch.nn.functional as tf

    x, w, b, dout = (torch.from_numpy(a) for a in _crp_arrays(dtype, seed, x_shape, w_shape,
                                                                conv, pool))
    w.requires_grad_(True)
    b.requires_grad_(True)
    kernel, stride = (pool["pool_height"], pool["pool_width"]), pool["stride"]

    def forward_backward() -> None:
        w.grad = b.grad = None
        a = tf.conv2d(x, w, b, stride=conv["stride"], padding=conv["pad"])
        tf.max_pool2d(torch.relu(a), kernel, stride).backward(dout)

    return forward_backward
