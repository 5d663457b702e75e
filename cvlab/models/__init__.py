"""Models: numpy (FullyConnectedNet, ThreeLayerConvNet) and PyTorch ones, imported on first use."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "FullyConnectedNet": "cvlab.models.fc_net",  # numpy
    "ThreeLayerConvNet": "cvlab.models.cnn",  # numpy
    "TwoLayerFC": "cvlab.models.torch_nets",  # torch (its ThreeLayerConvNet: torch_nets)
    "build_two_layer_fc": "cvlab.models.torch_nets",
    "build_three_layer_convnet": "cvlab.models.torch_nets",
    "ChallengeNet": "cvlab.models.challenge",  # torch
    "CaptioningRNN": "cvlab.models.captioning",  # torch
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cvlab.models' has no attribute {name!r}")
