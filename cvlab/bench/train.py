"""`cvlab bench train`: training speed of the numpy ThreeLayerConvNet vs the same net in PyTorch.

One training step = forward, backward and an Adam update on a minibatch of 50 float32 CIFAR-
shaped images (the experiment=cnn_one_epoch network: 32 filters 7x7, hidden 500, reg 1e-3).
The numpy step runs the model's loss (fast conv/pool layers) and cvlab.train.optim.adam on every
parameter, as the Solver does; the PyTorch step is the same architecture (Conv2d - ReLU -
MaxPool2d - Linear - ReLU - Linear, cross-entropy + L2) with torch.optim.Adam on the CPU, with
the same thread count. Both are timed interleaved (cvlab.bench.median_times); the table gives
median ms per step, images per second and the ratio. Rows go to run_dir/bench_train.csv.

Other trainers may add rows: when `cvlab.bench.train_torch` exists and defines
`extra_rows(cfg, threads) -> list[dict]` (keys as TrainRow), its rows are appended.
"""

from __future__ import annotations

import csv
import importlib
import logging
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from cvlab.bench import median_times, thread_count
from cvlab.config.commands import BenchConfig
from cvlab.progress import console
from cvlab.runs import write_summary

log = logging.getLogger(__name__)

COURSE_IMAGES_PER_S = 450.0  # the course's own fast layers on a 2-core machine (the issue)


@dataclass
class TrainRow:
    """Speed of one training setup."""

    model: str
    framework: str
    batch_size: int
    dtype: str
    step_ms: float
    images_per_s: float
    vs_numpy: float  # this row's time per step / the numpy row's (1.0 for numpy itself)
    threads: int


@dataclass(frozen=True)
class NetShape:
    batch_size: int = 50
    input_dim: tuple[int, int, int] = (3, 32, 32)
    num_filters: int = 32
    filter_size: int = 7
    hidden_dim: int = 500
    reg: float = 1e-3


QUICK_SHAPE = NetShape(batch_size=8, input_dim=(3, 16, 16), num_filters=8, hidden_dim=50)


def numpy_step(shape: NetShape, rng: np.random.RandomState) -> Any:
    """A closure doing one numpy training step (loss, backward, Adam on every parameter)."""
    from cvlab.models.cnn import ThreeLayerConvNet
    from cvlab.train.optim import adam

    model = ThreeLayerConvNet(input_dim=shape.input_dim, num_filters=shape.num_filters,
                              filter_size=shape.filter_size, hidden_dim=shape.hidden_dim,
                              reg=shape.reg, dtype=np.float32, rng=rng)
    X = (rng.randn(shape.batch_size, *shape.input_dim) * 60).astype(np.float32)
    y = rng.randint(10, size=shape.batch_size)
    configs: dict[str, dict] = {name: {"learning_rate": 1e-3} for name in model.params}

    def step() -> None:
        _, grads = model.loss(X, y)
        for name, w in model.params.items():
            model.params[name], configs[name] = adam(w, grads[name], configs[name])

    return step


def torch_step(shape: NetShape, rng: np.random.RandomState) -> Any:
    """A closure doing one PyTorch CPU training step of the same network."""
    import torch
    from torch import nn

    C, H, W = shape.input_dim
    torch.manual_seed(0)
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
    X = torch.from_numpy((rng.randn(shape.batch_size, *shape.input_dim) * 60).astype(np.float32))
    y = torch.from_numpy(rng.randint(10, size=shape.batch_size))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(net(X), y)
        loss = loss + 0.5 * shape.reg * sum((w * w).sum() for w in weights)
        loss.backward()
        optimizer.step()

    return step


def extra_rows(cfg: BenchConfig, threads: int) -> list[TrainRow]:
    """Rows other trainers contribute (cvlab.bench.train_torch.extra_rows), when present."""
    try:
        module = importlib.import_module("cvlab.bench.train_torch")
    except ModuleNotFoundError as err:
        if err.name == "cvlab.bench.train_torch":
            return []
        raise
    contribute = getattr(module, "extra_rows", None)
    if contribute is None:
        return []
    return [row if isinstance(row, TrainRow) else TrainRow(**row)
            for row in contribute(cfg, threads)]


def table_of(rows: list[TrainRow], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("model", "framework", "batch", "dtype", "threads", "ms / step", "images/s",
                   "time vs numpy"):
        table.add_column(column, justify="left" if column in ("model", "framework") else "right")
    for row in rows:
        table.add_row(row.model, row.framework, str(row.batch_size), row.dtype, str(row.threads),
                      f"{row.step_ms:.1f}", f"{row.images_per_s:.0f}", f"{row.vs_numpy:.2f}x")
    return table


def write_csv(path: Path, rows: list[TrainRow]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)


def run(cfg: BenchConfig, run_dir: Path) -> int:
    """Time numpy and PyTorch training steps side by side; table on screen, CSV in run_dir."""
    import torch

    from cvlab import layers

    start = time.perf_counter()
    shape = QUICK_SHAPE if cfg.quick else NetShape()
    rng = np.random.RandomState(0)
    implementation = layers.implementation()
    with thread_count(cfg.threads) as threads:
        console.print(
            f"ThreeLayerConvNet training step (forward, backward, Adam), batch "
            f"{shape.batch_size}, float32; fast layers: {implementation}; threads {threads}; "
            f"torch {torch.__version__}; {platform.processor() or platform.machine()}; "
            f"repeats {cfg.repeats}, warm-up {cfg.warmup}"
            f"{'; QUICK shapes' if cfg.quick else ''}"
        )
        write_summary(run_dir, status="running", implementation=implementation, threads=threads)
        seconds = median_times(
            {"numpy": numpy_step(shape, rng), "pytorch": torch_step(shape, rng)},
            repeats=cfg.repeats, warmup=cfg.warmup, pause_s=0.05,
        )
        rows = [
            TrainRow("ThreeLayerConvNet", framework, shape.batch_size, "float32",
                     round(seconds[key] * 1e3, 3), round(shape.batch_size / seconds[key], 1),
                     round(seconds[key] / seconds["numpy"], 3), threads)
            for key, framework in (("numpy", f"numpy ({implementation})"),
                                   ("pytorch", "pytorch cpu"))
        ]
        rows += extra_rows(cfg, threads)
    wide = Console(width=max(console.width, 110))
    wide.print(table_of(rows, "cvlab bench train: median time per training step"))
    numpy_rate, torch_rate = rows[0].images_per_s, rows[1].images_per_s
    one_epoch_s = 49000 / numpy_rate
    console.print(
        f"numpy: {numpy_rate:.0f} images/s ({numpy_rate / COURSE_IMAGES_PER_S:.2f}x the course's "
        f"~{COURSE_IMAGES_PER_S:.0f}); PyTorch is {torch_rate / numpy_rate:.2f}x faster; one "
        f"epoch of 49k images (cnn_one_epoch) ~ {one_epoch_s:.0f} s of training steps"
    )
    write_csv(run_dir / "bench_train.csv", rows)
    write_summary(
        run_dir, status="completed", wall_time_s=round(time.perf_counter() - start, 3),
        implementation=implementation, threads=threads, quick=cfg.quick,
        metrics={
            "numpy_images_per_s": numpy_rate,
            "pytorch_images_per_s": torch_rate,
            "pytorch_speedup_over_numpy": round(torch_rate / numpy_rate, 3),
            "numpy_vs_course_450": round(numpy_rate / COURSE_IMAGES_PER_S, 3),
            "estimated_one_epoch_s": round(one_epoch_s, 1),
        },
    )
    return 0
