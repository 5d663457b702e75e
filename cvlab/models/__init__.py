"""Models and their registry (cvlab.models.registry): the numpy FullyConnectedNet and
ThreeLayerConvNet, the PyTorch nets (cvlab.models.nets) and the captioner, imported on first use
so that `import cvlab.models` costs nothing and never imports torch."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "FullyConnectedNet": "cvlab.models.fc_net",  # numpy
    "ThreeLayerConvNet": "cvlab.models.cnn",  # numpy (the torch one: nets.torch_nets)
    "TwoLayerFC": "cvlab.models.nets.torch_nets",
    "build_two_layer_fc": "cvlab.models.nets.torch_nets",
    "build_three_layer_convnet": "cvlab.models.nets.torch_nets",
    "ChallengeNet": "cvlab.models.nets.challenge",
    "CaptioningRNN": "cvlab.models.nets.captioning",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cvlab.models' has no attribute {name!r}")
