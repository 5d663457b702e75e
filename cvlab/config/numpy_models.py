"""Schemas of the numpy models (`cvlab train model=fc|bn_fc|ln_fc|dropout_fc|cnn`)
and of the conv demo (`experiment=conv_demo`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from cvlab.config import check, check_choice, check_positive
from cvlab.config.train import DTYPES, MODELS

NORMALIZATIONS = ("none", "batchnorm", "layernorm")


@MODELS.register("fc_net")
@dataclass
class FullyConnectedNetConfig:
    """FullyConnectedNet: {affine - [norm] - relu - [dropout]} x (L-1) - affine - softmax."""

    family: ClassVar[str] = "numpy"
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


@MODELS.register("three_layer_convnet")
@dataclass
class ThreeLayerConvNetConfig:
    """ThreeLayerConvNet: conv - relu - 2x2 max pool - affine - relu - affine - softmax."""

    family: ClassVar[str] = "numpy"
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


@MODELS.register("conv_demo")
@dataclass
class ConvDemoConfig:
    """The conv demo (`experiment=conv_demo`): grayscale and edge filters on two images.

    `images`: image files (any format Pillow reads); empty = the two built-in images
    (matplotlib's sample photo when present, and a generated scene). Images are resized to
    `image_size` x `image_size` before filtering.
    """

    family: ClassVar[str] = "numpy"
    type: str = "conv_demo"
    images: list[str] = field(default_factory=list)
    image_size: int = 200

    def __post_init__(self) -> None:
        check(self.image_size >= 3, "image_size", self.image_size, "an integer >= 3")
