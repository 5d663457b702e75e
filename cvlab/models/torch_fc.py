"""`model=torch_fc`: the course's two-layer fully-connected net in PyTorch, at its three API
levels (flatten - affine - relu - affine; the network code is cvlab.models.nets.torch_nets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvlab.families.torch import TORCH
from cvlab.models.registry import ModelSpec, register
from cvlab.models.torch_common import TorchModelConfig
from cvlab.validation import check_choice, check_positive
from cvlab.vocab import API_LEVELS


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


def build(cfg: TorchFCConfig, input_shape: tuple[int, int, int], num_classes: int,
          seed: int) -> Any:
    """The net (an nn.Module) for inputs (C, H, W); weights drawn from seeded generators."""
    import torch

    from cvlab.models.nets.torch_nets import build_two_layer_fc

    torch.manual_seed(seed)
    return build_two_layer_fc(cfg.api, input_shape, cfg.hidden_dim, num_classes,
                              generator=torch.Generator().manual_seed(seed))


SPEC = register(ModelSpec(name="torch_fc", family=TORCH, schema=TorchFCConfig, build=build))
