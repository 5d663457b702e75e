"""`model=challenge`: the CIFAR-10 challenge CNN (airbench-style: a fixed PCA-whitening conv,
three conv-pool-batchnorm-GELU groups, a scaled linear head; the network code is
cvlab.models.nets.challenge).

bias_lr_scale multiplies the learning rate of the batchnorm shifts; lookahead_every > 0 pulls
the weights toward a slow average every that many steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cvlab.families.torch import TORCH
from cvlab.models.registry import ModelSpec, register
from cvlab.models.torch_common import TorchModelConfig
from cvlab.validation import check, check_positive


@dataclass
class ChallengeConfig(TorchModelConfig):
    """The challenge CNN (whitening conv, three conv-pool-BN groups, linear head)."""

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


def build(cfg: ChallengeConfig, input_shape: tuple[int, int, int], num_classes: int,
          seed: int) -> Any:
    """The ChallengeNet of `cfg` for inputs (C, H, W), initialized from torch's seeded RNG."""
    import torch

    from cvlab.models.nets.challenge import ChallengeNet

    torch.manual_seed(seed)
    return ChallengeNet(tuple(cfg.widths), num_classes, cfg.bn_momentum, cfg.scaling_factor,
                        cfg.whiten_bias_epochs, in_channels=input_shape[0], depth=cfg.depth)


SPEC = register(ModelSpec(name="challenge", family=TORCH, schema=ChallengeConfig, build=build,
                          plot_hooks=("filters",)))
