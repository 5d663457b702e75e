"""Schemas of the PyTorch models (`cvlab train model=torch_fc|torch_cnn|challenge`).

Every torch model also carries its data augmentation and test-time augmentation (they are
part of the recipe): `crop_pad` (random translation by up to that many pixels, 0 = off),
`flip` (none | random | alternating), `padding_mode` (reflect | zeros), `tta`
(none | flip | flip_translate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from cvlab.config import check, check_choice, check_positive
from cvlab.config.train import DTYPES, MODELS

API_LEVELS = ("barebones", "module", "sequential")
FLIP_MODES = ("none", "random", "alternating")
PAD_MODES = ("reflect", "zeros")
TTA_LEVELS = ("none", "flip", "flip_translate")


@dataclass
class TorchModelConfig:
    """Fields shared by the torch models: dtype and augmentation."""

    family: ClassVar[str] = "torch"
    type: str = ""
    dtype: str = "float32"
    crop_pad: int = 0
    flip: str = "none"
    padding_mode: str = "reflect"
    tta: str = "none"

    def __post_init__(self) -> None:
        check_choice("dtype", self.dtype, DTYPES)
        check(0 <= self.crop_pad <= 8, "crop_pad", self.crop_pad, "an integer in [0, 8]")
        check_choice("flip", self.flip, FLIP_MODES)
        check_choice("padding_mode", self.padding_mode, PAD_MODES)
        check_choice("tta", self.tta, TTA_LEVELS)


@MODELS.register("torch_fc")
@dataclass
class TorchFCConfig(TorchModelConfig):
    """Two-layer FC net: flatten - affine - relu - affine, at api barebones|module|sequential."""

    type: str = "torch_fc"
    api: str = "module"
    hidden_dim: int = 4000

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("api", self.api, API_LEVELS)
        check_positive("hidden_dim", self.hidden_dim)


@MODELS.register("torch_cnn")
@dataclass
class TorchCNNConfig(TorchModelConfig):
    """Three-layer convnet: conv5x5 - relu - conv3x3 - relu - fc, at each api level."""

    type: str = "torch_cnn"
    api: str = "module"
    channel_1: int = 32
    channel_2: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("api", self.api, API_LEVELS)
        check_positive("channel_1", self.channel_1)
        check_positive("channel_2", self.channel_2)


@MODELS.register("challenge")
@dataclass
class ChallengeConfig(TorchModelConfig):
    """The challenge CNN (whitening conv, three conv-pool-BN groups, linear head).

    bias_lr_scale multiplies the learning rate of the batchnorm/whitening shifts;
    lookahead_every > 0 pulls the weights toward a slow average every that many steps.
    """

    type: str = "challenge"
    widths: list[int] = field(default_factory=lambda: [128, 384, 384])
    depth: int = 2  # convolutions per group; 3 adds a residual conv pair
    bn_momentum: float = 0.4
    scaling_factor: float = 1 / 9
    whiten_bias_epochs: int = 3
    bias_lr_scale: float = 64.0
    lookahead_every: int = 5
    crop_pad: int = 2
    flip: str = "alternating"
    tta: str = "flip_translate"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(len(self.widths) == 3 and all(w > 0 for w in self.widths), "widths",
              self.widths, "a list of three integers > 0")
        check(self.depth in (2, 3), "depth", self.depth, "2 or 3 (convolutions per group)")
        check(0 < self.bn_momentum <= 1, "bn_momentum", self.bn_momentum, "a number in (0, 1]")
        check_positive("scaling_factor", self.scaling_factor)
        check(self.whiten_bias_epochs >= 0, "whiten_bias_epochs", self.whiten_bias_epochs,
              "an integer >= 0")
        check_positive("bias_lr_scale", self.bias_lr_scale)
        check(self.lookahead_every >= 0, "lookahead_every", self.lookahead_every,
              "an integer >= 0 (0 = off)")
