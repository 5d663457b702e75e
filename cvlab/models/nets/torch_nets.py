"""The course's PyTorch networks at its three levels of abstraction.

Two networks, each written three ways (the same parameters and the same function):
    two-layer FC:        flatten - affine (D -> hidden) - relu - affine (hidden -> 10)
    three-layer convnet: conv 5x5 pad 2 (3 -> channel_1) - relu
                         - conv 3x3 pad 1 (channel_1 -> channel_2) - relu - affine (-> 10)

    api="barebones":  a list of parameter tensors (requires_grad) and a functional forward
                      `two_layer_fc(x, params)` / `three_layer_convnet(x, params)`;
                      weights drawn by `random_weight` (Kaiming normal), biases `zero_weight`.
    api="module":     nn.Module subclasses `TwoLayerFC` / `ThreeLayerConvNet`.
    api="sequential": `two_layer_fc_sequential` / `three_layer_convnet_sequential` (nn.Sequential,
                      PyTorch's default initialization, as in the course's Sequential examples).

Inputs are images x of shape (N, C, H, W); every forward returns scores of shape (N, 10).
The barebones two-layer net carries biases too (the course's omits them) so that the three
levels have the same parameter count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cvlab.vocab import API_LEVELS

# ----------------------------------------------------------------------------- barebones


def random_weight(
    shape: Sequence[int],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Kaiming-normal weight (std sqrt(2 / fan_in)) that requires grad.

    FC weights are (D, M) with fan_in = D; conv weights are (F, C, HH, WW) with
    fan_in = C * HH * WW (the course's convention).
    """
    shape = tuple(int(s) for s in shape)
    fan_in = shape[0] if len(shape) == 2 else math.prod(shape[1:])
    w = torch.randn(shape, generator=generator, dtype=dtype) * math.sqrt(2.0 / fan_in)
    return w.to(device).requires_grad_(True)


def zero_weight(
    shape: Sequence[int], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A tensor of zeros of `shape` that requires grad (biases)."""
    return torch.zeros(tuple(shape), device=device, dtype=dtype, requires_grad=True)


def two_layer_fc(x: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Functional two-layer FC net: x (N, C, H, W) -> scores (N, 10).

    params = [w1 (D, hidden), b1 (hidden,), w2 (hidden, 10), b2 (10,)].
    """
    w1, b1, w2, b2 = params
    hidden = F.relu(x.flatten(1).mm(w1) + b1)
    return hidden.mm(w2) + b2


def two_layer_fc_params(
    input_dim: int, hidden_dim: int, num_classes: int = 10,
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """[w1, b1, w2, b2] for `two_layer_fc` (Kaiming-normal weights, zero biases)."""
    return [
        random_weight((input_dim, hidden_dim), device, dtype, generator),
        zero_weight((hidden_dim,), device, dtype),
        random_weight((hidden_dim, num_classes), device, dtype, generator),
        zero_weight((num_classes,), device, dtype),
    ]


def three_layer_convnet(x: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Functional three-layer convnet: x (N, C, H, W) -> scores (N, 10).

    params = [conv_w1 (F1, C, 5, 5), conv_b1 (F1,), conv_w2 (F2, F1, 3, 3), conv_b2 (F2,),
              fc_w (F2*H*W, 10), fc_b (10,)].
    """
    conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b = params
    hidden = F.relu(F.conv2d(x, conv_w1, conv_b1, padding=2))
    hidden = F.relu(F.conv2d(hidden, conv_w2, conv_b2, padding=1))
    return hidden.flatten(1).mm(fc_w) + fc_b


def three_layer_convnet_params(
    in_channel: int, channel_1: int, channel_2: int, image_size: tuple[int, int] = (32, 32),
    num_classes: int = 10, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """Parameters of `three_layer_convnet` (Kaiming-normal weights, zero biases)."""
    height, width = image_size
    return [
        random_weight((channel_1, in_channel, 5, 5), device, dtype, generator),
        zero_weight((channel_1,), device, dtype),
        random_weight((channel_2, channel_1, 3, 3), device, dtype, generator),
        zero_weight((channel_2,), device, dtype),
        random_weight((channel_2 * height * width, num_classes), device, dtype, generator),
        zero_weight((num_classes,), device, dtype),
    ]


class Barebones(nn.Module):
    """Wraps a parameter list and a functional forward so the trainer can treat all levels alike.

    `params` keeps the course's list of tensors (the same objects as `parameters()`).
    """

    def __init__(
        self,
        forward_fn: Callable[[torch.Tensor, Sequence[torch.Tensor]], torch.Tensor],
        params: Sequence[torch.Tensor],
    ) -> None:
        super().__init__()
        self.forward_fn = forward_fn
        self.params = nn.ParameterList([nn.Parameter(p.detach()) for p in params])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_fn(x, list(self.params))


# ----------------------------------------------------------------------------- nn.Module


class TwoLayerFC(nn.Module):
    """flatten - Linear(input_size, hidden_size) - relu - Linear(hidden_size, num_classes)."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.fc2 = nn.Linear(hidden_size, num_classes)
        for layer in (self.fc1, self.fc2):
            nn.init.kaiming_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class ThreeLayerConvNet(nn.Module):
    """conv 5x5 pad 2 - relu - conv 3x3 pad 1 - relu - Linear(channel_2*H*W, num_classes)."""

    def __init__(
        self, in_channel: int, channel_1: int, channel_2: int, num_classes: int = 10,
        image_size: tuple[int, int] = (32, 32),
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channel, channel_1, 5, padding=2)
        self.conv2 = nn.Conv2d(channel_1, channel_2, 3, padding=1)
        self.fc = nn.Linear(channel_2 * image_size[0] * image_size[1], num_classes)
        for layer in (self.conv1, self.conv2, self.fc):
            nn.init.kaiming_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.conv1(x))
        hidden = F.relu(self.conv2(hidden))
        return self.fc(hidden.flatten(1))


# ----------------------------------------------------------------------------- nn.Sequential


def two_layer_fc_sequential(
    input_size: int, hidden_size: int, num_classes: int = 10
) -> nn.Sequential:
    """nn.Sequential(Flatten, Linear, ReLU, Linear) with PyTorch's default init (the course's)."""
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(input_size, hidden_size),
        nn.ReLU(),
        nn.Linear(hidden_size, num_classes),
    )
    return model


def three_layer_convnet_sequential(
    in_channel: int, channel_1: int, channel_2: int, num_classes: int = 10,
    image_size: tuple[int, int] = (32, 32),
) -> nn.Sequential:
    """nn.Sequential version of the three-layer convnet, PyTorch's default init (the course's)."""
    model = nn.Sequential(
        nn.Conv2d(in_channel, channel_1, 5, padding=2),
        nn.ReLU(),
        nn.Conv2d(channel_1, channel_2, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channel_2 * image_size[0] * image_size[1], num_classes),
    )
    return model


# ----------------------------------------------------------------------------- factories


def build_two_layer_fc(
    api: str, input_shape: tuple[int, int, int], hidden_dim: int, num_classes: int,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """The two-layer FC net at API level `api` (barebones | module | sequential)."""
    input_dim = math.prod(input_shape)
    if api == "barebones":
        params = two_layer_fc_params(input_dim, hidden_dim, num_classes, generator=generator)
        return Barebones(two_layer_fc, params)
    if api == "module":
        return TwoLayerFC(input_dim, hidden_dim, num_classes)
    if api == "sequential":
        return two_layer_fc_sequential(input_dim, hidden_dim, num_classes)
    raise ValueError(f"api={api!r}; expected one of {', '.join(API_LEVELS)}")


def build_three_layer_convnet(
    api: str, input_shape: tuple[int, int, int], channel_1: int, channel_2: int,
    num_classes: int, generator: torch.Generator | None = None,
) -> nn.Module:
    """The three-layer convnet at API level `api` (barebones | module | sequential)."""
    channels, height, width = input_shape
    if api == "barebones":
        params = three_layer_convnet_params(
            channels, channel_1, channel_2, (height, width), num_classes, generator=generator
        )
        return Barebones(three_layer_convnet, params)
    if api == "module":
        return ThreeLayerConvNet(channels, channel_1, channel_2, num_classes, (height, width))
    if api == "sequential":
        return three_layer_convnet_sequential(
            channels, channel_1, channel_2, num_classes, (height, width)
        )
    raise ValueError(f"api={api!r}; expected one of {', '.join(API_LEVELS)}")
