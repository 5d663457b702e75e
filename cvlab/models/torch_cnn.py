"""`model=torch_cnn`: the course's three-layer convnet in PyTorch, at its three API levels
(conv 5x5 - relu - conv 3x3 - relu - fc; the network code is cvlab.models.nets.torch_nets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvlab.families.torch import TORCH
from cvlab.models.registry import ModelSpec, register
from cvlab.models.torch_common import TorchModelConfig
from cvlab.validation import check_choice, check_positive
from cvlab.vocab import API_LEVELS


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


def build(cfg: TorchCNNConfig, input_shape: tuple[int, int, int], num_classes: int,
          seed: int) -> Any:
    """The net (an nn.Module) for inputs (C, H, W); weights drawn from seeded generators."""
    import torch

    from cvlab.models.nets.torch_nets import build_three_layer_convnet

    torch.manual_seed(seed)
    return build_three_layer_convnet(cfg.api, input_shape, cfg.channel_1, cfg.channel_2,
                                     num_classes, generator=torch.Generator().manual_seed(seed))


SPEC = register(ModelSpec(name="torch_cnn", family=TORCH, schema=TorchCNNConfig, build=build,
                          plot_hooks=("filters",)))
