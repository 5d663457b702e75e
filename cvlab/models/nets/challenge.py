"""The open-challenge network: a compact VGG-style CNN with batchnorm, built for fast training.

Architecture (after the ideas of the fast single-GPU CIFAR-10 recipes, airbench in particular):

    whiten:  conv 2x2 (3 -> 24, no padding) - GELU; weights fixed to the PCA whitening of 2x2
             patches of the training images (both signs of the 12 eigen-filters, so the GELU
             keeps both halves); only its bias learns, during the first `whiten_bias_epochs`
    block k (k = 1, 2, 3; widths W1, W2, W3):
             conv 3x3 - max pool 2 - batchnorm - GELU - conv 3x3 - batchnorm - GELU
    head:    max pool 3 - flatten - linear (W3 -> 10, no bias) - times `scaling_factor`

x (N, 3, 32, 32) -> whiten (N, 24, 31, 31) -> (N, W1, 15, 15) -> (N, W2, 7, 7) -> (N, W3, 3, 3)
-> scores (N, 10). Convolutions have no bias and start as identity maps on their first input
channels (dirac init); batchnorm scales are fixed at 1 and only the batchnorm shifts learn, at a
larger learning rate (`param_groups`). The whitening conv runs in the weights' dtype (float32)
even under mixed precision. Test-time augmentation (`predict`) averages the scores of the
image, its mirror and one-pixel translations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cvlab.train.torch_task import TrainingHooks


class FixedScaleBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose scale (weight) stays 1; only the shift (bias) is trained."""

    def __init__(self, num_features: int, momentum: float = 0.4, eps: float = 1e-12) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Module):
    """conv 3x3 (C_in -> C_out) - max pool 2 - BN - GELU - conv 3x3 - BN - GELU.

    depth=3 adds a residual branch: h = (first conv, pool, BN, GELU); out = h + branch(h), the
    branch being conv - BN - GELU - conv - BN - GELU.
    """

    def __init__(
        self, in_channels: int, out_channels: int, bn_momentum: float, depth: int = 2
    ) -> None:
        super().__init__()
        if depth not in (2, 3):
            raise ValueError(f"depth={depth}; expected 2 or 3 convolutions per group")
        self.depth = depth
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding="same", bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = FixedScaleBatchNorm(out_channels, bn_momentum)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding="same", bias=False)
        self.norm2 = FixedScaleBatchNorm(out_channels, bn_momentum)
        self.activation = nn.GELU()
        convs = [self.conv1, self.conv2]
        if depth == 3:
            self.conv3 = nn.Conv2d(out_channels, out_channels, 3, padding="same", bias=False)
            self.norm3 = FixedScaleBatchNorm(out_channels, bn_momentum)
            convs.append(self.conv3)
        for conv in convs:
            weight = conv.weight.data
            nn.init.dirac_(weight[: min(weight.size(0), weight.size(1))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activation(self.norm1(self.pool(self.conv1(x))))
        branch = self.activation(self.norm2(self.conv2(x)))
        if self.depth == 2:
            return branch
        return x + self.activation(self.norm3(self.conv3(branch)))


class ChallengeNet(nn.Module, TrainingHooks):
    """Whitening conv, three ConvGroups of widths `widths` (`depth` convs each), linear head."""

    def __init__(
        self,
        widths: Sequence[int],
        num_classes: int,
        bn_momentum: float,
        scaling_factor: float,
        whiten_bias_epochs: int,
        in_channels: int,
        depth: int,
    ) -> None:
        super().__init__()
        patch_dim = in_channels * 2 * 2
        self.whiten = nn.Conv2d(in_channels, 2 * patch_dim, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        groups, previous = [], 2 * patch_dim
        for width in widths:
            groups.append(ConvGroup(previous, width, bn_momentum, depth))
            previous = width
        self.groups = nn.Sequential(*groups)
        self.pool = nn.MaxPool2d(3)
        self.head = nn.Linear(previous, num_classes, bias=False)
        self.scaling_factor = scaling_factor
        self.whiten_bias_epochs = whiten_bias_epochs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The whitening filters have gains up to 1/sqrt(eps) and output small differences of
        # large terms: in bf16 its finest channels lose ~15 % to rounding, so it runs in float32
        # even under autocast (3 -> 24 channels: negligible cost).
        with torch.autocast(x.device.type, enabled=False):
            x = F.gelu(self.whiten(x.to(self.whiten.weight.dtype)))
        x = self.groups(x)
        x = self.pool(x).flatten(1)
        return self.head(x) * self.scaling_factor

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters from normalized training images (N, 3, H, W).

        The 2x2 patches' covariance has eigenvectors V and eigenvalues L; the filters are
        V / sqrt(L + eps) and their negatives.
        """
        images = images.float()
        channels = images.size(1)
        patches = images.unfold(2, 2, 1).unfold(3, 2, 1)  # N, C, H-1, W-1, 2, 2
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, channels * 4).double()
        patches = patches - patches.mean(0, keepdim=True)
        covariance = patches.T @ patches / patches.size(0)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).flip(0)
        filters = filters.reshape(-1, channels, 2, 2).float()
        weight = torch.cat([filters, -filters]).to(self.whiten.weight)
        self.whiten.weight.copy_(weight)

    def before_training(self, images: torch.Tensor) -> None:
        """The whitening filters from the first training images (TrainingHooks)."""
        self.init_whitening(images)

    def on_epoch_start(self, epoch: int) -> None:
        """Train the whitening bias only during the first `whiten_bias_epochs` epochs."""
        self.whiten.bias.requires_grad_(epoch < self.whiten_bias_epochs)

    def param_groups(
        self, learning_rate: float, weight_decay: float, bias_lr_scale: float = 64.0
    ) -> list[dict]:
        """Optimizer groups: batchnorm shifts at `bias_lr_scale` times the rate, the rest at it.

        Weight decay is given per step (decoupled from the rate): each group's torch
        `weight_decay` is `weight_decay / lr`, so lr * weight_decay is the same everywhere.
        """
        named = list(self.named_parameters())
        biases = [p for name, p in named if ".norm" in name and p.requires_grad]
        others = [p for name, p in named if ".norm" not in name and p.requires_grad]
        bias_lr = learning_rate * bias_lr_scale
        return [
            {"params": biases, "lr": bias_lr, "weight_decay": weight_decay / bias_lr},
            {"params": others, "lr": learning_rate, "weight_decay": weight_decay / learning_rate},
        ]
