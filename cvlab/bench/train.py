"""`cvlab bench train`: the numpy ThreeLayerConvNet training step against the same net in
PyTorch on the CPU.

One training step = forward, backward and an Adam update on a minibatch of 50 float32
CIFAR-shaped images (cvlab.bench.steps: the course's ThreeLayerConvNet, and the
experiment=cnn_one_epoch variant with hidden 500 and reg 1e-3); the numpy step runs the
model's loss and cvlab.train.optim.apply_updates, as the Solver does; the PyTorch step is the
same architecture with torch.optim.Adam. Each framework is timed in its own process with the
same thread count, alternating (cvlab.bench.isolated), and a row for the challenge net's CPU
step is timed in the PyTorch process. The table gives median ms per step (and the range over
the measurements), images per second, the cores each process kept busy, its CPU time per
step (all its threads, spin-waiting included; on a machine shared with other work it moves
less than the wall time) and `torch time / numpy time`: numpy's speed relative to PyTorch
(1.0 = as fast, > 1 faster). Rows go to run_dir/bench_train.csv, the headline numbers to
summary.json.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from cvlab.bench import csv_text, load_average, thread_count
from cvlab.bench.isolated import Case, Timing, alternate
from cvlab.bench.steps import COURSE_SHAPE, ONE_EPOCH_SHAPE, QUICK_SHAPE, NetShape
from cvlab.config.commands import BenchConfig
from cvlab.layers.fast import fallback_notice
from cvlab.progress import console
from cvlab.records.files import atomic_write_text
from cvlab.records.summary import write_summary

log = logging.getLogger(__name__)

TARGET = 0.8  # numpy's step at least 0.8x as fast as PyTorch's (torch time / numpy time)
STEPS = "cvlab.bench.steps"


@dataclass
class TrainRow:
    """Speed of one training setup."""

    model: str
    framework: str
    batch_size: int
    dtype: str
    step_ms: float  # median over the measurements
    images_per_s: float
    step_ms_min: float
    step_ms_max: float
    threads: int
    cores_used: float  # median CPU seconds of the process per wall second while it ran
    cpu_ms: float  # median CPU time of the process per step (all its threads, spinning too)
    torch_time_over_numpy_time: float | None  # numpy speed relative to this PyTorch row
    paired_min: float | None  # that ratio within each round: lowest and highest
    paired_max: float | None


@dataclass(frozen=True)
class Pair:
    """A network timed in both frameworks."""

    name: str
    shape: NetShape


def pairs_of(quick: bool) -> list[Pair]:
    if quick:
        return [Pair("ThreeLayerConvNet (quick shapes)", QUICK_SHAPE)]
    return [Pair("ThreeLayerConvNet", COURSE_SHAPE),
            Pair("ThreeLayerConvNet cnn_one_epoch", ONE_EPOCH_SHAPE)]


def challenge_size(quick: bool) -> tuple[list[int], int]:
    """ChallengeNet's widths and batch size in this bench."""
    return ([4, 8, 8], 8) if quick else ([32, 64, 128], 256)


def cases_of(pairs: list[Pair], quick: bool) -> list[Case]:
    cases = []
    for pair in pairs:
        cases += [Case(f"{pair.name}|numpy", "numpy", f"{STEPS}:numpy_train_step",
                       pair.shape.kwargs()),
                  Case(f"{pair.name}|torch", "torch", f"{STEPS}:torch_train_step",
                       pair.shape.kwargs())]
    widths, batch = challenge_size(quick)
    cases.append(Case(f"ChallengeNet {'/'.join(map(str, widths))}|torch", "torch",
                      f"{STEPS}:challenge_train_step",
                      {"widths": widths, "batch_size": batch}))
    return cases


def _row(timing: Timing, batch_size: int, threads: int,
         numpy_timing: Timing | None = None) -> TrainRow:
    ratio = paired = None
    if numpy_timing is not None:
        ratio = round(timing.median_s / numpy_timing.median_s, 3)
        paired = [t / n for t, n in zip(timing.seconds, numpy_timing.seconds)]
    framework = "numpy" if timing.framework == "numpy" else "pytorch cpu"
    return TrainRow(
        model=timing.label.split("|")[0], framework=framework, batch_size=batch_size,
        dtype="float32", threads=threads, step_ms=round(timing.median_s * 1e3, 3),
        step_ms_min=round(min(timing.seconds) * 1e3, 3),
        step_ms_max=round(max(timing.seconds) * 1e3, 3),
        images_per_s=round(batch_size / timing.median_s, 1),
        cores_used=round(statistics.median(timing.cores), 2),
        cpu_ms=round(statistics.median(timing.cpu_seconds) * 1e3, 3),
        torch_time_over_numpy_time=ratio,
        paired_min=round(min(paired), 3) if paired else None,
        paired_max=round(max(paired), 3) if paired else None)


def table_of(rows: list[TrainRow], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("model", "framework", "batch", "threads", "ms / step\n(median)",
                   "min - max", "images/s", "cores\nused", "CPU ms\n/ step",
                   "torch time / numpy time\n(numpy speed\nrel. to PyTorch)"):
        table.add_column(column, justify="left" if column in ("model", "framework") else "right",
                         no_wrap=column == "model")
    for row in rows:
        ratio = "" if row.torch_time_over_numpy_time is None else (
            f"{row.torch_time_over_numpy_time:.2f} ({row.paired_min:.2f}-{row.paired_max:.2f})")
        table.add_row(row.model, row.framework, str(row.batch_size), str(row.threads),
                      f"{row.step_ms:.1f}", f"{row.step_ms_min:.1f} - {row.step_ms_max:.1f}",
                      f"{row.images_per_s:.0f}", f"{row.cores_used:.2f}", f"{row.cpu_ms:.1f}",
                      ratio)
    return table


def _print_setup(cfg: BenchConfig, pairs: list, implementation: str, threads: int,
                 load_start: float) -> None:
    console.print(
        f"training step (forward, backward, Adam), float32, each framework in its own process, "
        f"alternating; fast layers: {implementation}; threads {threads} per framework; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; repeats "
        f"{cfg.repeats}, warm-up {cfg.warmup}; load average {load_start:.1f}"
        f"{'; QUICK shapes' if cfg.quick else ''}")
    for pair in pairs:
        console.print(f"  {pair.name}: {pair.shape.describe()}")
    notice = fallback_notice()
    if notice:
        console.print(f"note: {notice}", soft_wrap=True)


def _rows_of(timings: dict, pairs: list, threads: int, quick: bool) -> list[TrainRow]:
    """numpy then PyTorch for each pair (the PyTorch row carries the ratio), then ChallengeNet."""
    rows = []
    for pair in pairs:
        numpy_timing = timings[f"{pair.name}|numpy"]
        rows.append(_row(numpy_timing, pair.shape.batch_size, threads))
        rows.append(_row(timings[f"{pair.name}|torch"], pair.shape.batch_size, threads,
                         numpy_timing))
    challenge = next(t for label, t in timings.items() if label.startswith("ChallengeNet"))
    rows.append(_row(challenge, challenge_size(quick)[1], threads))
    return rows


def _headline(name: str, rows: list[TrainRow], idle_cpu_share: float | None,
              load_start: float, load_end: float) -> str:
    ratio = rows[1].torch_time_over_numpy_time
    idle = "n/a" if idle_cpu_share is None else f"{100 * idle_cpu_share:.1f} % of a core"
    return (
        f"{name}: numpy {rows[0].images_per_s:.0f} images/s, PyTorch "
        f"{rows[1].images_per_s:.0f} images/s; "
        f"numpy speed relative to PyTorch (torch time / numpy time) {ratio:.2f} "
        f"(target >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'}); CPU used by the "
        f"waiting process during measurements: {idle}; load average {load_start:.1f} at the "
        f"start, {load_end:.1f} at the end (on {os.cpu_count()} CPUs; a load above the CPU "
        f"count means the frameworks shared their cores with other work)")


def _metrics(rows: list[TrainRow], idle_cpu_share: float | None) -> dict:
    numpy_row, torch_row = rows[0], rows[1]
    return {
        "numpy_images_per_s": numpy_row.images_per_s,
        "pytorch_images_per_s": torch_row.images_per_s,
        "numpy_step_ms": numpy_row.step_ms,
        "pytorch_step_ms": torch_row.step_ms,
        "numpy_cpu_ms": numpy_row.cpu_ms,
        "pytorch_cpu_ms": torch_row.cpu_ms,
        "torch_time_over_numpy_time": torch_row.torch_time_over_numpy_time,
        "paired_ratio_min": torch_row.paired_min,
        "paired_ratio_max": torch_row.paired_max,
        "idle_process_cpu_share": (None if idle_cpu_share is None
                                   else round(idle_cpu_share, 4)),
    }


def run(cfg: BenchConfig, run_dir: Path) -> int:
    """Time the numpy and PyTorch steps in their own processes; table on screen, rows in
    run_dir/bench_train.csv, headline numbers in summary.json."""
    from cvlab import layers

    start = time.perf_counter()
    threads = thread_count(cfg.threads)
    pairs = pairs_of(cfg.quick)
    implementation = layers.implementation()
    load_start = load_average()
    _print_setup(cfg, pairs, implementation, threads, load_start)
    write_summary(run_dir, status="running", implementation=implementation, threads=threads)
    result = alternate(cases_of(pairs, cfg.quick), threads, cfg.repeats, cfg.warmup,
                       min_time_s=0.05 if cfg.quick else 0.25, pause_s=0.01 if cfg.quick else 0.1)
    rows = _rows_of(result.timings, pairs, threads, cfg.quick)
    load_end = load_average()

    wide = Console(width=max(console.width, 140))
    wide.print(table_of(rows, "cvlab bench train: time per training step, medians of "
                        "alternating measurements"))
    console.print(_headline(pairs[0].name, rows, result.idle_cpu_share, load_start, load_end))
    csv_path = run_dir / "bench_train.csv"
    atomic_write_text(csv_path, csv_text([asdict(row) for row in rows]))
    write_summary(
        run_dir, status="completed", wall_time_s=round(time.perf_counter() - start, 3),
        implementation=implementation, threads=threads, quick=cfg.quick,
        load_average={"start": round(load_start, 2), "end": round(load_end, 2)},
        metrics=_metrics(rows, result.idle_cpu_share),
    )
    console.print(f"rows in {csv_path}; summary in {run_dir / 'summary.json'}",
                  soft_wrap=True)
    return 0
