"""What the benchmarks time: builders of closures, one framework each, run in that framework's
own benchmark process (cvlab.bench.isolated). Every builder takes JSON-able keyword arguments
and returns a function of no arguments doing one unit of work.

The numpy builders never import torch, so that the numpy process has no OpenMP thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

Step = Callable[[], object]


@dataclass(frozen=True)
class NetShape:
    """The ThreeLayerConvNet trained in a step: conv F filters HHxHH pad (HH-1)//2 - relu -
    2x2 max pool - affine (F*H/2*W/2 -> hidden) - relu - affine (hidden -> 10) - softmax."""

    batch_size: int = 50
    input_dim: tuple[int, int, int] = (3, 32, 32)
    num_filters: int = 32
    filter_size: int = 7
    hidden_dim: int = 100
    reg: float = 0.0

    def describe(self) -> str:
        C, H, W = self.input_dim
        return (f"batch {self.batch_size}, conv {self.num_filters}x{self.filter_size}x"
                f"{self.filter_size} pad {(self.filter_size - 1) // 2} - relu - 2x2 max pool - "
                f"affine {self.num_filters * (H // 2) * (W // 2)}x{self.hidden_dim} - relu - "
                f"affine {self.hidden_dim}x10, softmax, Adam, reg {self.reg:g}")

    def kwargs(self) -> dict[str, Any]:
        return asdict(self)


COURSE_SHAPE = NetShape()  # the network of the course's ThreeLayerConvNet defaults
ONE_EPOCH_SHAPE = NetShape(hidden_dim=500, reg=1e-3)  # experiment=cnn_one_epoch
QUICK_SHAPE = NetShape(batch_size=8, input_dim=(3, 16, 16), num_filters=8, hidden_dim=50)


def _data(shape: NetShape, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    X = (rng.randn(shape.batch_size, *shape.input_dim) * 60).astype(np.float32)
    return X, rng.randint(10, size=shape.batch_size)


def numpy_train_step(seed: int = 0, **shape_kwargs: Any) -> Step:
    """One numpy training step as the Solver does it: model.loss (forward and backward, fast
    fused layers) and apply_updates with Adam (learning rate 1e-3) on every parameter."""
    from cvlab.models.cnn import ThreeLayerConvNet
    from cvlab.train.optim import apply_updates

    shape = NetShape(**_tuples(shape_kwargs))
    model = ThreeLayerConvNet(input_dim=shape.input_dim, num_filters=shape.num_filters,
                              filter_size=shape.filter_size, hidden_dim=shape.hidden_dim,
                              reg=shape.reg, dtype=np.float32, rng=np.random.RandomState(seed))
    X, y = _data(shape, seed + 1)
    configs: dict[str, dict] = {name: {"learning_rate": 1e-3} for name in model.params}

    def step() -> None:
        _, grads = model.loss(X, y)
        apply_updates(model.params, grads, configs, "adam")

    return step


def torch_train_step(seed: int = 0, **shape_kwargs: Any) -> Step:
    """One PyTorch CPU training step of the same network: Conv2d - ReLU - MaxPool2d - Linear -
    ReLU - Linear, cross-entropy (+ L2 as the numpy model's reg), torch.optim.Adam (lr 1e-3),
    float32; no gradient for the input images (as the numpy step)."""
    import torch
    from torch import nn

    shape = NetShape(**_tuples(shape_kwargs))
    C, H, W = shape.input_dim
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(C, shape.num_filters, shape.filter_size, padding=(shape.filter_size - 1) // 2),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(shape.num_filters * (H // 2) * (W // 2), shape.hidden_dim),
        nn.ReLU(),
        nn.Linear(shape.hidden_dim, 10),
    )
    weights = [m.weight for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    X, y = (torch.from_numpy(a) for a in _data(shape, seed + 1))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(net(X), y)
        if shape.reg:
            loss = loss + 0.5 * shape.reg * sum((w * w).sum() for w in weights)
        loss.backward()
        optimizer.step()

    return step


def challenge_train_step(widths: list[int] = (32, 64, 128), batch_size: int = 256,
                         image_size: int = 32, seed: int = 0) -> Step:
    """One training step of the challenge net at its CPU size (experiment=challenge_cpu:
    widths 32/64/128, batch 256, SGD Nesterov, label smoothing 0.2, float32) on the CPU."""
    import torch
    import torch.nn.functional as F

    from cvlab.models.challenge import ChallengeConfig, build

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


def _tuples(kwargs: dict[str, Any]) -> dict[str, Any]:
    """JSON turned the tuples into lists."""
    return {key: tuple(value) if isinstance(value, list) else value
            for key, value in kwargs.items()}
