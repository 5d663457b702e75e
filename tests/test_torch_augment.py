"""Batched crop/flip augmentation against a per-image reference (F.pad + slicing + flip)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cvlab.train.augment import crop_flip, epoch_flips, normalize, random_offsets

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference(images, offsets, flips, pad, mode):
    out = []
    for image, (dy, dx), flip in zip(images, offsets.tolist(), flips.tolist()):
        padded = F.pad(image[None].float(), (pad,) * 4, mode="reflect" if mode == "reflect"
                       else "constant")[0]
        crop = padded[:, pad + dy: pad + dy + image.shape[1], pad + dx: pad + dx + image.shape[2]]
        out.append(crop.flip(-1) if flip else crop)
    return torch.stack(out).to(images.dtype)


@pytest.mark.parametrize("mode", ["reflect", "zeros"])
def test_crop_flip_matches_per_image_reference(mode):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 8, 8), generator=generator, dtype=torch.uint8)
    offsets = random_offsets(16, 3, generator)
    flips = torch.rand(16, generator=generator) < 0.5
    out = crop_flip(images, offsets, flips, mode)
    assert out.shape == images.shape and out.dtype == torch.uint8
    torch.testing.assert_close(out, reference(images, offsets, flips, 3, mode))


def test_flip_twice_is_identity_and_zero_offset_keeps_images():
    images = torch.randn(6, 3, 32, 32)
    zero = torch.zeros(6, 2, dtype=torch.long)
    flips = torch.tensor([True, False, True, True, False, True])
    once = crop_flip(images, zero, flips)
    torch.testing.assert_close(crop_flip(once, zero, flips), images)
    torch.testing.assert_close(crop_flip(images, zero, torch.zeros(6, dtype=torch.bool)), images)
    torch.testing.assert_close(once[0], images[0].flip(-1))


def test_augmentation_keeps_each_image_with_its_label():
    # image i is constant i: whatever the crop and flip, it stays recognisably image i
    images = torch.arange(10, dtype=torch.uint8)[:, None, None, None].expand(10, 3, 32, 32)
    generator = torch.Generator().manual_seed(1)
    out = crop_flip(images, random_offsets(10, 4, generator), torch.rand(10) < 0.5)
    assert torch.equal(out.flatten(1).float().mean(1), torch.arange(10).float())


def test_alternating_flips_invert_every_other_epoch_and_random_flips_vary():
    generator = torch.Generator().manual_seed(2)
    first = epoch_flips(1000, 0, "alternating", 7, generator)
    assert torch.equal(epoch_flips(1000, 1, "alternating", 7, generator), ~first)
    assert torch.equal(epoch_flips(1000, 2, "alternating", 7, generator), first)
    assert 400 < int(first.sum()) < 600
    assert not epoch_flips(50, 0, "none", 0, generator).any()
    assert not torch.equal(epoch_flips(1000, 0, "random", 0, generator),
                           epoch_flips(1000, 0, "random", 0, generator))


def test_normalize_uses_the_course_scale():
    images = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    mean, std = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.5, 1.0])
    out = normalize(images, mean, std, torch.float32)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([2.0, 1.0, 0.5]))
