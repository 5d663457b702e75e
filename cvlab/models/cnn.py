"""ThreeLayerConvNet: the course's small convolutional network (numpy, fused fast layers).

    conv (F filters HHxWW, stride 1, pad (HH-1)//2) - relu - 2x2 max pool (stride 2)
    - affine (hidden_dim) - relu - affine (num_classes) - softmax
Parameters: W1 (F, C, HH, WW), b1 (F,), W2 (F*H/2*W/2, hidden_dim), b2, W3 (hidden_dim, C'), b3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cvlab.config.train import ModelConfig
from cvlab.families.numpy import NUMPY
from cvlab.layers import (
    affine_backward,
    affine_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)
from cvlab.models.fc_net import draw_normal
from cvlab.models.registry import ModelSpec, register
from cvlab.validation import check, check_choice, check_positive
from cvlab.vocab import DTYPES


@dataclass
class ThreeLayerConvNetConfig(ModelConfig):
    """`model=cnn`: conv - relu - 2x2 max pool - affine - relu - affine - softmax."""

    type: str = "three_layer_convnet"
    num_filters: int = 32
    filter_size: int = 7
    hidden_dim: int = 100
    weight_scale: float = 1e-3
    reg: float = 0.0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_positive("num_filters", self.num_filters)
        check(self.filter_size > 0 and self.filter_size % 2 == 1, "filter_size",
              self.filter_size, "an odd integer > 0")
        check_positive("hidden_dim", self.hidden_dim)
        check_positive("weight_scale", self.weight_scale)
        check(self.reg >= 0, "reg", self.reg, "a number >= 0")
        check_choice("dtype", self.dtype, DTYPES)


class ThreeLayerConvNet:
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax on (N, C, H, W) inputs.

    Weights are drawn from `rng` (default: numpy's global RNG) in the course's order:
    W1, W2, W3 (each weight_scale * randn), biases zero. Its whole state is its params.
    """

    buffers: tuple[str, ...] = ()

    def __init__(
        self,
        input_dim: tuple[int, int, int] = (3, 32, 32),
        num_filters: int = ThreeLayerConvNetConfig.num_filters,
        filter_size: int = ThreeLayerConvNetConfig.filter_size,
        hidden_dim: int = ThreeLayerConvNetConfig.hidden_dim,
        num_classes: int = 10,
        weight_scale: float = ThreeLayerConvNetConfig.weight_scale,
        reg: float = ThreeLayerConvNetConfig.reg,
        dtype: Any = np.float32,
        rng: Any = None,
    ) -> None:
        rng = np.random if rng is None else rng
        self.params: dict[str, np.ndarray] = {}
        self.reg = reg
        self.dtype = dtype
        C, H, W = input_dim
        self.params["W1"] = weight_scale * draw_normal(
            rng, (num_filters, C, filter_size, filter_size)
        )
        self.params["b1"] = np.zeros(num_filters)
        self.params["W2"] = weight_scale * draw_normal(
            rng, (num_filters * (H // 2) * (W // 2), hidden_dim)
        )
        self.params["b2"] = np.zeros(hidden_dim)
        self.params["W3"] = weight_scale * draw_normal(rng, (hidden_dim, num_classes))
        self.params["b3"] = np.zeros(num_classes)
        for name, value in self.params.items():
            self.params[name] = value.astype(dtype)

    def loss(self, X: np.ndarray, y: np.ndarray | None = None) -> Any:
        """Scores (N, C') when y is None; else (loss, grads) with the keys of params."""
        X = X.astype(self.dtype, copy=False)
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        W3, b3 = self.params["W3"], self.params["b3"]
        filter_size = W1.shape[2]
        conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

        pool_out, conv_cache = conv_relu_pool_forward(X, W1, b1, conv_param, pool_param)
        hidden, affine2_cache = affine_forward(pool_out, W2, b2)
        hidden_relu, relu2_cache = relu_forward(hidden)
        scores, affine3_cache = affine_forward(hidden_relu, W3, b3)
        if y is None:
            return scores

        data_loss, dscores = softmax_loss(scores, y)
        loss = data_loss
        if self.reg:  # reg = 0 adds exact zeros: skip the passes over the weights
            loss += 0.5 * self.reg * sum(float(np.sum(w * w)) for w in (W1, W2, W3))

        grads: dict[str, np.ndarray] = {}
        dhidden_relu, grads["W3"], grads["b3"] = affine_backward(dscores, affine3_cache)
        dhidden = relu_backward(dhidden_relu, relu2_cache, out=dhidden_relu)
        dpool, grads["W2"], grads["b2"] = affine_backward(dhidden, affine2_cache)
        # the input gradient of the first layer is not needed: skip its GEMM and col2im
        _, grads["W1"], grads["b1"] = conv_relu_pool_backward(dpool, conv_cache,
                                                              compute_dx=False)
        if self.reg:
            for name in ("W1", "W2", "W3"):
                grads[name] += self.reg * self.params[name]
        return loss, grads


def build(cfg: ThreeLayerConvNetConfig, input_shape: tuple[int, ...], num_classes: int,
          rng: Any) -> ThreeLayerConvNet:
    """The net of `cfg` for inputs of `input_shape` (C, H, W), weights drawn from `rng`."""
    return ThreeLayerConvNet(
        input_dim=tuple(input_shape), num_filters=cfg.num_filters,
        filter_size=cfg.filter_size, hidden_dim=cfg.hidden_dim, num_classes=num_classes,
        weight_scale=cfg.weight_scale, reg=cfg.reg, dtype=np.dtype(cfg.dtype).type, rng=rng,
    )


SPEC = register(ModelSpec(name="three_layer_convnet", family=NUMPY,
                          schema=ThreeLayerConvNetConfig, build=build, plot_hooks=("filters",)))
