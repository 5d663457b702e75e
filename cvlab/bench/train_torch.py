"""Rows of `cvlab bench train` for the torch challenge net (CPU training speed).

`extra_rows(cfg, threads)` times one training step of the challenge net at its CPU size
(experiment=challenge_cpu: widths 32/64/128, batch 256, SGD Nesterov, bf16 off) interleaved
with the numpy ThreeLayerConvNet step of the main table, so the ratio is measured side by side.
`challenge_images_per_second(...)` is the same measurement as a plain function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cvlab.bench import median_times
from cvlab.models.challenge import ChallengeConfig, build


def challenge_step(
    widths: Sequence[int] = (32, 64, 128), batch_size: int = 256, image_size: int = 32,
    seed: int = 0,
) -> Callable[[], None]:
    """A closure doing one challenge-net training step (forward, backward, SGD) on the CPU."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build(ChallengeConfig(widths=list(widths)), (3, image_size, image_size), 10, seed)
    images = torch.randn(batch_size, 3, image_size, image_size, generator=generator)
    labels = torch.randint(0, 10, (batch_size,), generator=generator)
    model.init_whitening(images)
    optimizer = torch.optim.SGD(model.param_groups(0.375, 5e-4), momentum=0.85, nesterov=True)

    def step() -> None:
        loss = F.cross_entropy(model(images), labels, label_smoothing=0.2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def challenge_images_per_second(
    widths: Sequence[int] = (32, 64, 128), batch_size: int = 256, repeats: int = 5,
    warmup: int = 1,
) -> float:
    """Median training images per second of the challenge net on the CPU (current threads)."""
    seconds = median_times({"challenge": challenge_step(widths, batch_size)}, repeats, warmup)
    return batch_size / seconds["challenge"]


def extra_rows(cfg: Any, threads: int) -> list[dict]:
    """One row: the challenge net's CPU training step next to the numpy ThreeLayerConvNet step."""
    from cvlab.bench.train import QUICK_SHAPE, NetShape, numpy_step

    shape = QUICK_SHAPE if cfg.quick else NetShape()
    widths, batch_size = ((4, 8, 8), 8) if cfg.quick else ((32, 64, 128), 256)
    seconds = median_times(
        {"numpy": numpy_step(shape, np.random.RandomState(0)),
         "challenge": challenge_step(widths, batch_size)},
        repeats=cfg.repeats, warmup=cfg.warmup, pause_s=0.05,
    )
    numpy_per_image = seconds["numpy"] / shape.batch_size
    challenge_per_image = seconds["challenge"] / batch_size
    return [{
        "model": f"ChallengeNet {'/'.join(map(str, widths))}",
        "framework": "pytorch cpu",
        "batch_size": batch_size,
        "dtype": "float32",
        "step_ms": round(seconds["challenge"] * 1e3, 3),
        "images_per_s": round(batch_size / seconds["challenge"], 1),
        # per image, since the batch differs from the numpy row's
        "vs_numpy": round(challenge_per_image / numpy_per_image, 3),
        "threads": threads,
    }]
