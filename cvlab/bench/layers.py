"""`cvlab bench layers`: naive vs fast layers, fast layers vs PyTorch CPU, batchnorm backward.

Every comparison times a reference and a candidate and reports both medians and the
candidate's speed relative to the reference (reference ms / candidate ms: > 1 = the candidate
is faster), with the target where there is one, in the same direction. numpy against numpy
(naive vs fast, batchnorm) is timed interleaved in this process; numpy against PyTorch, each
framework in its own process, alternating (cvlab.bench.isolated), with the CPU the waiting
process used reported. Shapes are the course's (conv x (100, 3, 31, 31), w (25, 3, 3, 3),
stride 2, pad 1; pool x (100, 3, 32, 32), 2x2 stride 2) and the ThreeLayerConvNet's (conv x
(50, 3, 32, 32), w (32, 3, 7, 7), stride 1, pad 3; pool x (50, 32, 32, 32), 2x2 stride 2).
The naive loops on the ThreeLayerConvNet ("cnn") shapes use the first 10 images (their time
grows linearly with the batch). `quick=true` shrinks everything.
"""

from __future__ import annotations

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
from cvlab.bench import csv_text, load_average, median_times, thread_count
from cvlab.bench.isolated import Case, alternate
from cvlab.config.commands import BenchConfig
from cvlab.layers import threads as layer_threads
from cvlab.layers.fast import fallback_notice
from cvlab.progress import console
from cvlab.records.files import atomic_write_text
from cvlab.records.summary import write_summary

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
    processes: str = "one"  # "one" process (numpy vs numpy), or "separate" (numpy vs torch)
    target: str = ""  # a bound on reference_over_candidate
    met: str = ""

    @property
    def reference_over_candidate(self) -> float:
        """The candidate's speed relative to the reference (> 1: the candidate is faster)."""
        return self.reference_ms / self.candidate_ms

    def row(self) -> dict[str, object]:
        return {**asdict(self),
                "reference_over_candidate": round(self.reference_over_candidate, 4)}

    def set_target(self, bound: float) -> None:
        """Target: the candidate at least `bound` times as fast as the reference."""
        self.target = f">= {bound:.3g}"
        self.met = "yes" if self.reference_over_candidate >= bound else "no"


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
LAYER_STEPS = "cvlab.bench.layer_steps"


class Bench:
    """Collects comparisons timed in this process, with the run's repeats and warm-up."""

    def __init__(self, repeats: int, warmup: int) -> None:
        self.repeats, self.warmup = repeats, warmup
        self.rows: list[Comparison] = []

    def compare(self, benchmark: str, shape: str, dtype: type, reference: tuple[str, Callable],
                candidate: tuple[str, Callable], target: float | None = None) -> Comparison:
        times = median_times({"reference": reference[1], "candidate": candidate[1]},
                             self.repeats, self.warmup)
        row = Comparison(benchmark, shape, np.dtype(dtype).name, reference[0],
                         times["reference"] * 1e3, candidate[0], times["candidate"] * 1e3)
        if target is not None:
            row.set_target(target)
        log.debug("%s %s %s: %s %.3f ms, %s %.3f ms", benchmark, shape, row.dtype,
                  row.reference, row.reference_ms, row.candidate, row.candidate_ms)
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
    bench.compare(f"conv forward naive/fast [{label}]", shape, np.float64,
                  ("naive", lambda: L.conv_forward_naive(x, w, b, conv_param)),
                  ("fast", lambda: L.conv_forward_fast(x, w, b, conv_param)),
                  targets.get("forward"))
    bench.compare(f"conv backward naive/fast [{label}]", shape, np.float64,
                  ("naive", lambda: L.conv_backward_naive(dout, naive_cache)),
                  ("fast", lambda: L.conv_backward_fast(dout, fast_cache)),
                  targets.get("backward"))


def pool_naive_vs_fast(bench: Bench, rng: np.random.RandomState, x_shape: tuple[int, ...],
                       label: str, target: float | None = None) -> None:
    x = rng.randn(*x_shape)
    out, naive_cache = L.max_pool_forward_naive(x, POOL)
    _, fast_cache = L.max_pool_forward_fast(x, POOL)
    dout = rng.randn(*out.shape)
    shape = _shape_text(x_shape, None, POOL)
    bench.compare(f"pool forward naive/fast [{label}]", shape, np.float64,
                  ("naive", lambda: L.max_pool_forward_naive(x, POOL)),
                  ("fast", lambda: L.max_pool_forward_fast(x, POOL)), target)
    bench.compare(f"pool backward naive/fast [{label}]", shape, np.float64,
                  ("naive", lambda: L.max_pool_backward_naive(dout, naive_cache)),
                  ("fast", lambda: L.max_pool_backward_fast(dout, fast_cache)), target)


def batchnorm_backward_vs_alt(bench: Bench, rng: np.random.RandomState,
                              shape: tuple[int, int]) -> None:
    N, D = shape
    x = 5 * rng.randn(N, D) + 12
    gamma, beta = rng.randn(D), rng.randn(D)
    dout = rng.randn(N, D)
    _, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    bench.compare("batchnorm backward graph/alt", f"x({N},{D})", np.float64,
                  ("batchnorm_backward", lambda: L.batchnorm_backward(dout, cache)),
                  ("batchnorm_backward_alt", lambda: L.batchnorm_backward_alt(dout, cache)), 1.0)


@dataclass(frozen=True)
class TorchComparison:
    """A fast layer (numpy process) against its PyTorch counterpart (PyTorch process)."""

    benchmark: str
    shape: str
    dtype: str
    fast: str  # builder names in cvlab.bench.layer_steps
    torch: str
    kwargs: dict
    target: float | None = None  # on torch ms / fast ms


def torch_comparisons(shapes: Shapes) -> list[TorchComparison]:
    """The fast conv and pool on the ThreeLayerConvNet's shapes, and its fused first layer.
    Targets: the fast conv (forward + backward) within 1.5x PyTorch's time in float32 and no
    slower in float64; the pool within 3x."""
    conv_shape = _shape_text(shapes.cnn_conv_x, shapes.cnn_conv_w, CNN_CONV)
    pool_shape = _shape_text(shapes.cnn_pool_x, None, POOL)
    comparisons = []
    for dtype, conv_bound in (("float32", 1 / 1.5), ("float64", 1.0)):
        conv = dict(dtype=dtype, x_shape=shapes.cnn_conv_x, w_shape=shapes.cnn_conv_w,
                    conv=CNN_CONV)
        pool = dict(dtype=dtype, x_shape=shapes.cnn_pool_x, pool=POOL)
        comparisons += [
            TorchComparison("conv forward torch/fast [cnn]", conv_shape, dtype, "fast_conv",
                            "torch_conv", {**conv, "what": "forward"}),
            TorchComparison("conv fwd+bwd torch/fast [cnn]", conv_shape, dtype, "fast_conv",
                            "torch_conv", {**conv, "what": "forward_backward"}, conv_bound),
            TorchComparison("pool forward torch/fast [cnn]", pool_shape, dtype, "fast_pool",
                            "torch_pool", {**pool, "what": "forward"}, 1 / 3),
            TorchComparison("pool fwd+bwd torch/fast [cnn]", pool_shape, dtype, "fast_pool",
                            "torch_pool", {**pool, "what": "forward_backward"}, 1 / 3),
        ]
    comparisons.append(TorchComparison(
        "conv-relu-pool fwd+bwd, no dx, torch/fused [cnn]", conv_shape + " pool 2x2", "float32",
        "fast_conv_relu_pool", "torch_conv_relu_pool",
        dict(dtype="float32", x_shape=shapes.cnn_conv_x, w_shape=shapes.cnn_conv_w,
             conv=CNN_CONV, pool=POOL)))
    return comparisons


def fast_vs_torch(comparisons: list[TorchComparison], threads: int, repeats: int,
                  warmup: int, quick: bool) -> tuple[list[Comparison], float | None]:
    """Time each comparison's two sides in their frameworks' own processes, alternating."""
    cases = []
    for i, c in enumerate(comparisons):
        cases += [Case(f"{i}|fast", "numpy", f"{LAYER_STEPS}:{c.fast}", c.kwargs),
                  Case(f"{i}|torch", "torch", f"{LAYER_STEPS}:{c.torch}", c.kwargs)]
    result = alternate(cases, threads, repeats, warmup, min_time_s=0.02 if quick else 0.1,
                       pause_s=0.01 if quick else 0.1)
    rows = []
    for i, c in enumerate(comparisons):
        row = Comparison(c.benchmark, c.shape, c.dtype, "torch",
                         result.timings[f"{i}|torch"].median_s * 1e3,
                         "fused" if "fused" in c.benchmark else "fast",
                         result.timings[f"{i}|fast"].median_s * 1e3, processes="separate")
        if c.target is not None:
            row.set_target(c.target)
        rows.append(row)
    return rows, result.idle_cpu_share


def table_of(rows: list[Comparison], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("benchmark", "dtype", "reference ms", "candidate ms",
                   "reference / candidate\n(candidate speed)", "target", "met", "processes"):
        table.add_column(column, justify="right" if "ms" in column or "/" in column
                         else "left")
    for row in rows:
        met = {"yes": "[green]yes[/green]", "no": "[bold red]no[/bold red]"}.get(row.met, "")
        table.add_row(row.benchmark, row.dtype.replace("float", "f"),
                      f"{row.reference_ms:.3f}", f"{row.candidate_ms:.3f}",
                      f"{row.reference_over_candidate:.2f}", row.target, met, row.processes)
    return table


def shapes_legend(rows: list[Comparison]) -> str:
    seen = dict.fromkeys(f"  {row.benchmark}: {row.shape}" for row in rows)
    return "shapes:\n" + "\n".join(seen)


def run(cfg: BenchConfig, run_dir: Path) -> int:
    """Run every layer benchmark; table on screen, rows in run_dir/bench_layers.csv."""
    start = time.perf_counter()
    shapes = QUICK_SHAPES if cfg.quick else Shapes()
    implementation = L.implementation()
    threads = thread_count(cfg.threads)
    bench = Bench(cfg.repeats, cfg.warmup)
    rng = np.random.RandomState(0)
    load_start = load_average()
    console.print(
        f"fast layers: {implementation} "
        f"({'compiled cvlab.ext' if implementation == 'cython' else 'numpy fallback'}); "
        f"threads {threads} (numpy layers and PyTorch alike); "
        f"{platform.processor() or platform.machine()}; repeats {cfg.repeats}, warm-up "
        f"{cfg.warmup}; load average {load_start:.1f} on {os.cpu_count()} CPUs"
        f"{'; QUICK shapes (targets not meaningful)' if cfg.quick else ''}")
    notice = fallback_notice()
    if notice:
        console.print(f"note: {notice}", soft_wrap=True)
    write_summary(run_dir, status="running", implementation=implementation, threads=threads)
    with layer_threads.use_threads(threads):
        n = shapes.naive_batch
        conv_naive_vs_fast(bench, rng, shapes.course_conv_x, shapes.course_conv_w, COURSE_CONV,
                           "course", {"forward": 20, "backward": 300})
        conv_naive_vs_fast(bench, rng, (n, *shapes.cnn_conv_x[1:]), shapes.cnn_conv_w,
                           CNN_CONV, "cnn")
        pool_naive_vs_fast(bench, rng, shapes.course_pool_x, "course", 50)
        pool_naive_vs_fast(bench, rng, (n, *shapes.cnn_pool_x[1:]), "cnn", 50)
        batchnorm_backward_vs_alt(bench, rng, shapes.batchnorm)
    torch_rows, idle_share = fast_vs_torch(torch_comparisons(shapes), threads, cfg.repeats,
                                           cfg.warmup, cfg.quick)
    rows = bench.rows + torch_rows
    console.print(shapes_legend(rows))
    wide = Console(width=max(console.width, 120))
    wide.print(table_of(rows, f"cvlab bench layers ({implementation}): medians; reference / "
                        "candidate = the candidate's speed relative to the reference"))
    csv_path = run_dir / "bench_layers.csv"
    atomic_write_text(csv_path, csv_text([row.row() for row in rows]))
    with_target = [row for row in rows if row.target]
    met = sum(row.met == "yes" for row in with_target)
    load_end = load_average()
    idle = "n/a" if idle_share is None else f"{100 * idle_share:.1f} % of a core"
    console.print(f"targets met: {met} of {len(with_target)}; CPU used by the waiting "
                  f"framework's process during the PyTorch comparisons: {idle}; load average "
                  f"{load_end:.1f} at the end (timings are reliable only when it stays below "
                  f"the CPU count)")
    write_summary(run_dir, status="completed", wall_time_s=time.perf_counter() - start,
                  implementation=implementation, threads=threads, quick=cfg.quick,
                  load_average={"start": round(load_start, 2), "end": round(load_end, 2)},
                  metrics={"targets_met": met, "targets": len(with_target),
                           "idle_process_cpu_share": idle_share,
                           **{f"{row.benchmark} [{row.dtype}] reference/candidate":
                              round(row.reference_over_candidate, 3) for row in rows}})
    console.print(f"rows in {csv_path}; summary in {run_dir / 'summary.json'}", soft_wrap=True)
    return 0
