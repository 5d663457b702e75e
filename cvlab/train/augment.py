"""Batched on-device data augmentation (random crop with padding, horizontal flip) and
test-time augmentation (predict_with_tta).

The whole batch is cropped and mirrored by one gather: for each image an offset (dy, dx) in
[-pad, pad] and a flip bit become row and column indices into the unpadded image, with the
padding done by the index (reflection or clamping to zero). No per-image Python work, any dtype
(uint8 images stay uint8), on whatever device the images live.

Randomness comes from an explicit CPU torch.Generator, so a run is reproducible across
devices and a resumed run draws exactly what the uninterrupted one drew.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cvlab.vocab import FLIP_MODES, PAD_MODES, TTA_LEVELS


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map indices in [-size+1, 2*size-2] into [0, size) by reflection (no edge repeat)."""
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


def crop_flip(
    images: torch.Tensor,
    offsets: torch.Tensor,
    flips: torch.Tensor,
    padding_mode: str = "reflect",
) -> torch.Tensor:
    """Translate each image by its offset and mirror the flagged ones; shape is kept.

    images: (N, C, H, W) any dtype. offsets: (N, 2) integer (dy, dx): output pixel (i, j)
    comes from input (i + dy, j + dx) of the padded image. flips: (N,) bool, mirror
    left-right after the crop. padding_mode: "reflect" or "zeros".
    """
    if padding_mode not in PAD_MODES:
        raise ValueError(f"padding_mode {padding_mode!r}; expected one of {', '.join(PAD_MODES)}")
    num, channels, height, width = images.shape
    device = images.device
    offsets = offsets.to(device)
    flips = flips.to(device)
    rows = torch.arange(height, device=device)[None, :] + offsets[:, 0:1]  # N, H
    cols = torch.arange(width, device=device)[None, :]
    cols = torch.where(flips[:, None], width - 1 - cols, cols) + offsets[:, 1:2]  # N, W
    if padding_mode == "reflect":
        rows_in, cols_in = _reflect(rows, height), _reflect(cols, width)
    else:
        rows_in, cols_in = rows.clamp(0, height - 1), cols.clamp(0, width - 1)
    batch_index = torch.arange(num, device=device)[:, None, None, None]
    channel_index = torch.arange(channels, device=device)[None, :, None, None]
    out = images[batch_index, channel_index, rows_in[:, None, :, None], cols_in[:, None, None, :]]
    if padding_mode == "zeros":
        inside = ((rows >= 0) & (rows < height))[:, None, :, None] & (
            (cols >= 0) & (cols < width)
        )[:, None, None, :]
        out = out * inside.to(out.dtype)
    return out


def random_offsets(num: int, pad: int, generator: torch.Generator) -> torch.Tensor:
    """(num, 2) integer offsets drawn uniformly from [-pad, pad]^2."""
    return torch.randint(-pad, pad + 1, (num, 2), generator=generator)


def epoch_flips(
    num_images: int, epoch: int, mode: str, seed: int, generator: torch.Generator
) -> torch.Tensor:
    """Flip bits (num_images,) for one epoch, indexed by training-image number.

    "none": never; "random": fresh coin flips each epoch (from `generator`); "alternating":
    one seeded coin flip per image at epoch 0, then inverted every other epoch, so each image
    is seen mirrored and unmirrored in turn.
    """
    if mode == "none":
        return torch.zeros(num_images, dtype=torch.bool)
    if mode == "random":
        return torch.rand(num_images, generator=generator) < 0.5
    if mode == "alternating":
        base = torch.rand(num_images, generator=torch.Generator().manual_seed(seed)) < 0.5
        return base ^ bool(epoch % 2)
    raise ValueError(f"flip mode {mode!r}; expected one of {', '.join(FLIP_MODES)}")


def normalize(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """uint8 images (N, C, H, W) in 0..255 -> (x/255 - mean) / std as `dtype`.

    mean and std are per-channel tensors of shape (C,) on the images' device.
    """
    x = images.to(dtype).div_(255.0)
    return x.sub_(mean.to(dtype)[:, None, None]).div_(std.to(dtype)[:, None, None])


def predict_with_tta(model: nn.Module, x: torch.Tensor, level: str = "none") -> torch.Tensor:
    """Scores (N, 10) of images x (N, C, H, W), averaged over test-time augmentations.

    level "none": the images; "flip": mean of the images and their mirrors;
    "flip_translate": 1/2 of that plus 1/4 each for the images shifted by one pixel up-left
    and down-right (reflect padding), each with its mirror.
    """
    if level == "none":
        return model(x)

    def mirrored(batch: torch.Tensor) -> torch.Tensor:
        return 0.5 * (model(batch) + model(batch.flip(-1)))

    scores = mirrored(x)
    if level == "flip":
        return scores
    if level != "flip_translate":
        raise ValueError(f"tta level {level!r}; expected one of {', '.join(TTA_LEVELS)}")
    height, width = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted_a = padded[..., 0:height, 0:width]
    shifted_b = padded[..., 2 : height + 2, 2 : width + 2]
    return 0.5 * scores + 0.25 * mirrored(shifted_a) + 0.25 * mirrored(shifted_b)
