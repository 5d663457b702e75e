"""FullyConnectedNet: the course's multi-layer fully-connected network (numpy).

Architecture for L = len(hidden_dims) + 1 layers:
    {affine - [batchnorm | layernorm] - relu - [dropout]} x (L - 1) - affine - softmax
Parameters live in `self.params`: W1..WL, b1..bL and, with a normalization,
gamma1..gamma(L-1) (ones) and beta1..beta(L-1) (zeros).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cvlab.config.train import ModelConfig
from cvlab.families.numpy import NUMPY
from cvlab.layers import (
    affine_backward,
    affine_forward,
    batchnorm_backward_alt,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
    layernorm_backward,
    layernorm_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)
from cvlab.layers._validate import check_class_labels, check_nonempty
from cvlab.models.registry import ModelSpec, register
from cvlab.validation import check, check_choice, check_positive
from cvlab.vocab import DTYPES, NORMALIZATIONS


@dataclass
class FullyConnectedNetConfig(ModelConfig):
    """`model=fc|bn_fc|ln_fc|dropout_fc`: {affine - [norm] - relu - [dropout]} x (L-1) -
    affine - softmax; dropout_keep_ratio is the probability of keeping a unit."""

    type: str = "fc_net"
    hidden_dims: list[int] = field(default_factory=lambda: [100, 100])
    normalization: str = "none"
    dropout_keep_ratio: float = 1.0
    weight_scale: float = 1e-2
    reg: float = 0.0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check(len(self.hidden_dims) > 0 and all(d > 0 for d in self.hidden_dims),
              "hidden_dims", self.hidden_dims, "a non-empty list of integers > 0")
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        check(0 < self.dropout_keep_ratio <= 1, "dropout_keep_ratio", self.dropout_keep_ratio,
              "a keep probability in (0, 1]")
        check_positive("weight_scale", self.weight_scale)
        check(self.reg >= 0, "reg", self.reg, "a number >= 0")
        check_choice("dtype", self.dtype, DTYPES)


def draw_normal(rng: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal draws of `shape` from a RandomState (or numpy's global one, np.random),
    or from a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng.standard_normal(shape)
    return rng.randn(*shape)


class FullyConnectedNet:
    """A fully-connected network with optional batch/layer normalization and dropout.

    Inputs are (N, d1, ..., dk) with d1 * ... * dk = input_dim; scores are (N, num_classes).
    Weights are drawn from `rng` (default: numpy's global RNG) in the course's order:
    for i = 1..L, W_i = weight_scale * randn(D_{i-1}, D_i), then zero biases.
    Its state beyond params: bn_params (batchnorm's running statistics) and dropout_param.
    """

    buffers = ("bn_params", "dropout_param")

    def __init__(
        self,
        hidden_dims: list[int],
        input_dim: int = 3 * 32 * 32,
        num_classes: int = 10,
        dropout_keep_ratio: float = FullyConnectedNetConfig.dropout_keep_ratio,
        normalization: str | None = None,
        reg: float = FullyConnectedNetConfig.reg,
        weight_scale: float = FullyConnectedNetConfig.weight_scale,
        dtype: Any = np.float32,
        seed: int | None = None,
        rng: Any = None,
    ) -> None:
        if normalization is not None and normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; valid: none, "
                             "batchnorm, layernorm")
        if not 0 < dropout_keep_ratio <= 1:
            raise ValueError(f"dropout_keep_ratio must be in (0, 1], got {dropout_keep_ratio}")
        rng = np.random if rng is None else rng
        self.normalization = None if normalization == "none" else normalization
        self.use_dropout = dropout_keep_ratio != 1
        self.reg = reg
        self.num_layers = 1 + len(hidden_dims)
        self.dtype = dtype
        self.params: dict[str, np.ndarray] = {}

        dims = [input_dim, *hidden_dims, num_classes]
        for i in range(self.num_layers):
            self.params[f"W{i + 1}"] = weight_scale * draw_normal(rng, (dims[i], dims[i + 1]))
            self.params[f"b{i + 1}"] = np.zeros(dims[i + 1])
            if self.normalization is not None and i < self.num_layers - 1:
                self.params[f"gamma{i + 1}"] = np.ones(dims[i + 1])
                self.params[f"beta{i + 1}"] = np.zeros(dims[i + 1])

        # Dropout: the same dict is passed to every dropout layer; with a seed the masks
        # are deterministic (gradient checks).
        self.dropout_param: dict[str, Any] = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout_keep_ratio}
            if seed is not None:
                self.dropout_param["seed"] = seed

        # One parameter dict per normalization layer (running statistics for batchnorm).
        self.bn_params: list[dict[str, Any]] = []
        if self.normalization == "batchnorm":
            self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]
        elif self.normalization == "layernorm":
            self.bn_params = [{} for _ in range(self.num_layers - 1)]

        for name, value in self.params.items():
            self.params[name] = value.astype(dtype)

    def _hidden_forward(self, x: np.ndarray, i: int) -> tuple[np.ndarray, tuple]:
        """Layer i (1-based) of the hidden stack: affine - [norm] - relu - [dropout]."""
        out, affine_cache = affine_forward(x, self.params[f"W{i}"], self.params[f"b{i}"])
        norm_cache = None
        if self.normalization == "batchnorm":
            out, norm_cache = batchnorm_forward(
                out, self.params[f"gamma{i}"], self.params[f"beta{i}"], self.bn_params[i - 1]
            )
        elif self.normalization == "layernorm":
            out, norm_cache = layernorm_forward(
                out, self.params[f"gamma{i}"], self.params[f"beta{i}"], self.bn_params[i - 1]
            )
        out, relu_cache = relu_forward(out)
        dropout_cache = None
        if self.use_dropout:
            out, dropout_cache = dropout_forward(out, self.dropout_param)
        return out, (affine_cache, norm_cache, relu_cache, dropout_cache)

    def _hidden_backward(self, dout: np.ndarray, cache: tuple, i: int,
                         grads: dict[str, np.ndarray]) -> np.ndarray:
        """Backward of _hidden_forward; writes dW, db (dgamma, dbeta) into grads, returns dx."""
        affine_cache, norm_cache, relu_cache, dropout_cache = cache
        if self.use_dropout:
            dout = dropout_backward(dout, dropout_cache)
        dout = relu_backward(dout, relu_cache)
        if self.normalization == "batchnorm":
            dout, grads[f"gamma{i}"], grads[f"beta{i}"] = batchnorm_backward_alt(dout, norm_cache)
        elif self.normalization == "layernorm":
            dout, grads[f"gamma{i}"], grads[f"beta{i}"] = layernorm_backward(dout, norm_cache)
        dx, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(dout, affine_cache)
        return dx

    def loss(self, X: np.ndarray, y: np.ndarray | None = None) -> Any:
        """Scores (N, C) when y is None (test mode); else (loss, grads) in train mode.

        X: (N, d1, ..., dk), N >= 1; y: (N,) integer labels in [0, C). grads has the keys of
        params. The batch is checked before the forward pass, so a bad one changes nothing
        (no running statistics updated).
        """
        if y is None:
            check_nonempty("FullyConnectedNet.loss", f"X {np.shape(X)}", np.shape(X)[0])
        else:
            check_class_labels("FullyConnectedNet.loss", X, y,
                               self.params[f"W{self.num_layers}"].shape[1])
        X = X.astype(self.dtype, copy=False)
        mode = "test" if y is None else "train"
        if self.use_dropout:
            self.dropout_param["mode"] = mode
        if self.normalization == "batchnorm":
            for bn_param in self.bn_params:
                bn_param["mode"] = mode

        caches = []
        out = X
        for i in range(1, self.num_layers):
            out, cache = self._hidden_forward(out, i)
            caches.append(cache)
        L = self.num_layers
        scores, last_cache = affine_forward(out, self.params[f"W{L}"], self.params[f"b{L}"])
        if mode == "test":
            return scores

        grads: dict[str, np.ndarray] = {}
        data_loss, dscores = softmax_loss(scores, y)
        weights = [self.params[f"W{i}"] for i in range(1, L + 1)]
        reg_loss = 0.5 * self.reg * sum(float(np.sum(W * W)) for W in weights)
        loss = data_loss + reg_loss

        dout, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, last_cache)
        grads[f"W{L}"] += self.reg * self.params[f"W{L}"]
        for i in range(L - 1, 0, -1):
            dout = self._hidden_backward(dout, caches[i - 1], i, grads)
            grads[f"W{i}"] += self.reg * self.params[f"W{i}"]
        return loss, grads


def build(cfg: FullyConnectedNetConfig, input_shape: tuple[int, ...], num_classes: int,
          rng: Any) -> FullyConnectedNet:
    """The net of `cfg` for inputs of `input_shape` (C, H, W), weights drawn from `rng`."""
    return FullyConnectedNet(
        list(cfg.hidden_dims), input_dim=int(np.prod(input_shape)), num_classes=num_classes,
        dropout_keep_ratio=cfg.dropout_keep_ratio, normalization=cfg.normalization,
        reg=cfg.reg, weight_scale=cfg.weight_scale, dtype=np.dtype(cfg.dtype).type, rng=rng,
    )


def without_normalization(cfg: FullyConnectedNetConfig) -> FullyConnectedNetConfig | None:
    """`cfg` without its normalization (the sweeps' baseline runs; its subclass kept)."""
    return replace(cfg, normalization="none") if cfg.normalization != "none" else None


SPEC = register(ModelSpec(name="fc_net", family=NUMPY, schema=FullyConnectedNetConfig,
                          build=build, without_normalization=without_normalization))
