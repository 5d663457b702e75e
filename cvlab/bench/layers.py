"""`cvlab bench layers`: naive vs fast layers, fast layers vs PyTorch CPU, batchnorm backward.

Every comparison times two functions interleaved (cvlab.bench.median_times) and reports
both medians, the speedup (reference / candidate) and the time ratio (candidate / reference),
with the target from the issue where there is one. Shapes are the course's (conv x
(100, 3, 31, 31), w (25, 3, 3, 3), stride 2, pad 1; pool x (100, 3, 32, 32), 2x2 stride 2)
and the ThreeLayerConvNet's (conv x (50, 3, 32, 32), w (32, 3, 7, 7), stride 1, pad 3; pool
x (50, 32, 32, 32), 2x2 stride 2). The naive loops on the ThreeLayerConvNet ("cnn") shapes use
the first 10 images (their time grows linearly with the batch). `quick=true` shrinks everything.
"""

from __future__ import annotations

import csv
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from cvlab import layers as L
from cvlab.bench import median_times, thread_count
from cvlab.config.commands import BenchConfig
from cvlab.progress import console
from cvlab.runs import write_summary

log = logging.getLogger(__name__)


@dataclass
class Comparison:
    """One benchmark row: a candidate implementation timed against a reference."""

    benchmark: str
    shape: str
    dtype: str
    reference: str
    reference_ms: float
    candidate: str
    candidate_ms: float
    target: str = ""
    met: str = ""

    @property
    def speedup(self) -> float:
        return self.reference_ms / self.candidate_ms

    @property
    def time_ratio(self) -> float:
        return self.candidate_ms / self.reference_ms

    def row(self) -> dict[str, object]:
        return {**asdict(self), "speedup": round(self.speedup, 3),
                "time_ratio": round(self.time_ratio, 4)}


@dataclass(frozen=True)
class Shapes:
    course_conv_x: tuple[int, ...] = (100, 3, 31, 31)
    course_conv_w: tuple[int, ...] = (25, 3, 3, 3)
    course_pool_x: tuple[int, ...] = (100, 3, 32, 32)
    cnn_conv_x: tuple[int, ...] = (50, 3, 32, 32)
    cnn_conv_w: tuple[int, ...] = (32, 3, 7, 7)
    cnn_pool_x: tuple[int, ...] = (50, 32, 32, 32)
    naive_batch: int = 10
    batchnorm: tuple[int, int] = (100, 500)


QUICK_SHAPES = Shapes(course_conv_x=(4, 3, 15, 15), course_conv_w=(5, 3, 3, 3),
                      course_pool_x=(4, 3, 16, 16), cnn_conv_x=(4, 3, 16, 16),
                      cnn_conv_w=(8, 3, 7, 7), cnn_pool_x=(4, 8, 16, 16), naive_batch=2,
                      batchnorm=(20, 50))

COURSE_CONV = {"stride": 2, "pad": 1}
CNN_CONV = {"stride": 1, "pad": 3}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}
# numpy's OpenBLAS and PyTorch's OpenMP threads spin after their work; comparisons between the
# two pause this long before each measurement so that neither runs against the other's spinners.
TORCH_PAUSE_S = 0.2


def _target(kind: str, bound: float, value: float) -> tuple[str, str]:
    """('speedup >= 20', 'yes'|'no') for kind 'speedup' or 'time_ratio'."""
    if kind == "speedup":
        return f"speedup >= {bound:g}", "yes" if value >= bound else "no"
    return f"time ratio <= {bound:g}", "yes" if value <= bound else "no"


class Bench:
    """Collects comparisons; each is timed with the run's repeats and warm-up."""

    def __init__(self, repeats: int, warmup: int, pause_s: float = TORCH_PAUSE_S) -> None:
        self.repeats, self.warmup, self.pause_s = repeats, warmup, pause_s
        self.rows: list[Comparison] = []

    def compare(self, benchmark: str, shape: str, dtype: type, reference: tuple[str, Callable],
                candidate: tuple[str, Callable], target: tuple[str, float] | None = None,
                pause_s: float = 0.0) -> Comparison:
        times = median_times({"reference": reference[1], "candidate": candidate[1]},
                             self.repeats, self.warmup, pause_s=min(pause_s, self.pause_s))
        row = Comparison(benchmark, shape, np.dtype(dtype).name, reference[0],
                         times["reference"] * 1e3, candidate[0], times["candidate"] * 1e3)
        if target is not None:
            kind, bound = target
            row.target, row.met = _target(kind, bound, getattr(row, kind))
        log.debug("%s %s %s: %s %.3f ms, %s %.3f ms (speedup %.1fx)", benchmark, shape,
                 row.dtype, row.reference, row.reference_ms, row.candidate, row.candidate_ms,
                 row.speedup)
        self.rows.append(row)
        return row


def _shape_text(x: tuple[int, ...], w: tuple[int, ...] | None = None, param: dict | None = None
                ) -> str:
    text = f"x{x}"
    if w is not None:
        text += f" w{w}"
    if param is not None:
        text += " " + " ".join(f"{k}={v}" for k, v in param.items() if k != "pool_width")
    return text.replace(" ", "").replace(")w(", ") w(").replace("stride", " stride").replace(
        "pad", " pad").replace("pool_height", " pool")


def conv_naive_vs_fast(bench: Bench, rng: np.random.RandomState, x_shape: tuple[int, ...],
                       w_shape: tuple[int, ...], conv_param: dict, label: str,
                       targets: dict[str, float] | None = None) -> None:
    x, w, b = rng.randn(*x_shape), rng.randn(*w_shape), rng.randn(w_shape[0])
    out, naive_cache = L.conv_forward_naive(x, w, b, conv_param)
    _, fast_cache = L.conv_forward_fast(x, w, b, conv_param)
    dout = rng.randn(*out.shape)
    shape = _shape_text(x_shape, w_shape, conv_param)
    targets = targets or {}
    fwd = ("speedup", targets["forward"]) if "forward" in targets else None
    bwd = ("speedup", targets["backward"]) if "backward" in targets else None
    bench.compare(f"conv forward naive/fast [{label}]", shape, np.float64,
                  ("naive", lambda: L.conv_forward_naive(x, w, b, conv_param)),
                  ("fast", lambda: L.conv_forward_fast(x, w, b, conv_param)), fwd)
    bench.compare(f"conv backward naive/fast [{label}]", shape, np.float64,
                  ("naive", lambda: L.conv_backward_naive(dout, naive_cache)),
                  ("fast", lambda: L.conv_backward_fast(dout, fast_cache)), bwd)


def pool_naive_vs_fast(bench: Bench, rng: np.random.RandomState, x_shape: tuple[int, ...],
                       label: str, target: float | None = None) -> None:
    x = rng.randn(*x_shape)
    out, naive_cache = L.max_pool_forward_naive(x, POOL)
    _, fast_cache = L.max_pool_forward_fast(x, POOL)
    dout = rng.randn(*out.shape)
    shape = _shape_text(x_shape, None, POOL)
    spec = ("speedup", target) if target is not None else None
    bench.compare(f"pool forward naive/fast [{label}]", shape, np.float64,
                  ("naive", lambda: L.max_pool_forward_naive(x, POOL)),
                  ("fast", lambda: L.max_pool_forward_fast(x, POOL)), spec)
    bench.compare(f"pool backward naive/fast [{label}]", shape, np.float64,
                  ("naive", lambda: L.max_pool_backward_naive(dout, naive_cache)),
                  ("fast", lambda: L.max_pool_backward_fast(dout, fast_cache)), spec)


def conv_fast_vs_torch(bench: Bench, rng: np.random.RandomState, x_shape: tuple[int, ...],
                       w_shape: tuple[int, ...], conv_param: dict, dtype: type,
                       bound: float) -> None:
    import torch
    import torch.nn.functional as tf

    x = rng.randn(*x_shape).astype(dtype)
    w = rng.randn(*w_shape).astype(dtype)
    b = rng.randn(w_shape[0]).astype(dtype)
    out, _ = L.conv_forward_fast(x, w, b, conv_param)
    dout = rng.randn(*out.shape).astype(dtype)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    dout_t = torch.tensor(dout)
    stride, pad = conv_param["stride"], conv_param["pad"]

    def torch_forward() -> None:
        with torch.no_grad():
            tf.conv2d(xt, wt, bt, stride=stride, padding=pad)

    def torch_forward_backward() -> None:
        xt.grad = wt.grad = bt.grad = None
        tf.conv2d(xt, wt, bt, stride=stride, padding=pad).backward(dout_t)

    def fast_forward_backward() -> None:
        _, cache = L.conv_forward_fast(x, w, b, conv_param)
        L.conv_backward_fast(dout, cache)

    shape = _shape_text(x_shape, w_shape, conv_param)
    bench.compare("conv forward torch/fast [cnn]", shape, dtype,
                  ("torch", torch_forward),
                  ("fast", lambda: L.conv_forward_fast(x, w, b, conv_param)),
                  pause_s=TORCH_PAUSE_S)
    bench.compare("conv fwd+bwd torch/fast [cnn]", shape, dtype,
                  ("torch", torch_forward_backward), ("fast", fast_forward_backward),
                  ("time_ratio", bound), pause_s=TORCH_PAUSE_S)


def pool_fast_vs_torch(bench: Bench, rng: np.random.RandomState, x_shape: tuple[int, ...],
                       dtype: type, bound: float) -> None:
    import torch
    import torch.nn.functional as tf

    x = rng.randn(*x_shape).astype(dtype)
    out, _ = L.max_pool_forward_fast(x, POOL)
    dout = rng.randn(*out.shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    dout_t = torch.tensor(dout)
    kernel, stride = (POOL["pool_height"], POOL["pool_width"]), POOL["stride"]

    def torch_forward() -> None:
        with torch.no_grad():
            tf.max_pool2d(xt, kernel, stride)

    def torch_forward_backward() -> None:
        xt.grad = None
        tf.max_pool2d(xt, kernel, stride).backward(dout_t)

    def fast_forward_backward() -> None:
        _, cache = L.max_pool_forward_fast(x, POOL)
        L.max_pool_backward_fast(dout, cache)

    shape = _shape_text(x_shape, None, POOL)
    bench.compare("pool forward torch/fast [cnn]", shape, dtype,
                  ("torch", torch_forward), ("fast", lambda: L.max_pool_forward_fast(x, POOL)),
                  ("time_ratio", bound), pause_s=TORCH_PAUSE_S)
    bench.compare("pool fwd+bwd torch/fast [cnn]", shape,
                  dtype, ("torch", torch_forward_backward), ("fast", fast_forward_backward),
                  ("time_ratio", bound), pause_s=TORCH_PAUSE_S)


def batchnorm_backward_vs_alt(bench: Bench, rng: np.random.RandomState,
                              shape: tuple[int, int]) -> None:
    N, D = shape
    x = 5 * rng.randn(N, D) + 12
    gamma, beta = rng.randn(D), rng.randn(D)
    dout = rng.randn(N, D)
    _, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    bench.compare("batchnorm backward graph/alt", f"x({N},{D})", np.float64,
                  ("batchnorm_backward", lambda: L.batchnorm_backward(dout, cache)),
                  ("batchnorm_backward_alt", lambda: L.batchnorm_backward_alt(dout, cache)),
                  ("speedup", 1.0))


def table_of(rows: list[Comparison], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("benchmark", "dtype", "reference ms", "candidate ms", "speedup", "target",
                   "met"):
        table.add_column(column, justify="right" if "ms" in column or column == "speedup"
                         else "left")
    for row in rows:
        met = {"yes": "[green]yes[/green]", "no": "[bold red]no[/bold red]"}.get(row.met, "")
        table.add_row(row.benchmark, row.dtype.replace("float", "f"),
                      f"{row.reference_ms:.3f}", f"{row.candidate_ms:.3f}",
                      f"{row.speedup:.2f}x", row.target.replace("time ratio", "ratio")
                      .replace(" ", ""), met)
    return table


def shapes_legend(rows: list[Comparison]) -> str:
    seen = dict.fromkeys(f"  {row.benchmark}: {row.shape}" for row in rows)
    return "shapes:\n" + "\n".join(seen)


def _load() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def write_csv(path: Path, rows: list[Comparison]) -> None:
    records = [row.row() for row in rows]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


def run(cfg: BenchConfig, run_dir: Path) -> int:
    """Run every layer benchmark; table on screen, rows in run_dir/bench_layers.csv."""
    import torch

    start = time.perf_counter()
    shapes = QUICK_SHAPES if cfg.quick else Shapes()
    implementation = L.implementation()
    bench = Bench(cfg.repeats, cfg.warmup, pause_s=0.01 if cfg.quick else TORCH_PAUSE_S)
    rng = np.random.RandomState(0)
    with thread_count(cfg.threads) as threads:
        header = (f"fast layers: {implementation} "
                  f"({'compiled cvlab.ext' if implementation == 'cython' else 'numpy fallback'}); "
                  f"threads: numpy {threads}, torch {torch.get_num_threads()}; "
                  f"torch {torch.__version__}; {platform.processor() or platform.machine()}; "
                  f"repeats {cfg.repeats}, warm-up {cfg.warmup}; "
                  f"load average {_load():.1f} on {os.cpu_count()} CPUs"
                  f"{'; QUICK shapes (targets not meaningful)' if cfg.quick else ''}")
        console.print(header)
        write_summary(run_dir, status="running", implementation=implementation, threads=threads)
        n = shapes.naive_batch
        conv_naive_vs_fast(bench, rng, shapes.course_conv_x, shapes.course_conv_w, COURSE_CONV,
                           "course", {"forward": 20, "backward": 300})
        conv_naive_vs_fast(bench, rng, (n, *shapes.cnn_conv_x[1:]), shapes.cnn_conv_w,
                           CNN_CONV, "cnn")
        pool_naive_vs_fast(bench, rng, shapes.course_pool_x, "course", 50)
        pool_naive_vs_fast(bench, rng, (n, *shapes.cnn_pool_x[1:]), "cnn", 50)
        for dtype, bound in ((np.float32, 1.5), (np.float64, 1.0)):
            conv_fast_vs_torch(bench, rng, shapes.cnn_conv_x, shapes.cnn_conv_w, CNN_CONV,
                               dtype, bound)
        for dtype in (np.float32, np.float64):
            pool_fast_vs_torch(bench, rng, shapes.cnn_pool_x, dtype, 3.0)
        batchnorm_backward_vs_alt(bench, rng, shapes.batchnorm)
    console.print(shapes_legend(bench.rows))
    wide = Console(width=max(console.width, 100))
    wide.print(table_of(bench.rows, f"cvlab bench layers ({implementation}): speedup = "
                        "reference ms / candidate ms, ratio = candidate / reference"))
    write_csv(run_dir / "bench_layers.csv", bench.rows)
    with_target = [row for row in bench.rows if row.target]
    met = sum(row.met == "yes" for row in with_target)
    console.print(f"targets met: {met} of {len(with_target)}; load average at the end "
                  f"{_load():.1f} (timings are reliable only on an otherwise idle machine); "
                  f"rows in {run_dir / 'bench_layers.csv'}")
    write_summary(run_dir, status="completed", wall_time_s=time.perf_counter() - start,
                  implementation=implementation, threads=threads, quick=cfg.quick,
                  load_average=round(_load(), 2),
                  metrics={"targets_met": met, "targets": len(with_target),
                           **{f"{row.benchmark} [{row.dtype}] speedup": round(row.speedup, 3)
                              for row in bench.rows}})
    return 0
