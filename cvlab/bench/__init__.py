"""Speed benchmarks (`cvlab bench layers|train`) and the timing helpers they share.

Timings are medians of repeated calls with warm-up calls excluded; functions compared with
each other are timed interleaved (A, B, A, B, ...) so that load from other processes falls on
all of them alike, and results are reported as ratios measured side by side. Functions of one
framework (numpy) are timed in one process with median_times; numpy against PyTorch, each in
its own process (cvlab.bench.isolated).
"""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
import time
from collections.abc import Callable


def csv_text(records: list[dict]) -> str:
    """The records as CSV text, columns in the first record's key order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def thread_count(configured: int | None) -> int:
    """The bench's `threads` setting, or the number numpy's BLAS has now when it is unset."""
    from cvlab.layers import threads

    return int(configured) if configured else threads.blas_threads()


def load_average() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def median_times(functions: dict[str, Callable[[], object]], repeats: int, warmup: int,
                 slow_s: float = 1.0, min_time_s: float = 0.005) -> dict[str, float]:
    """Median seconds per call of each function, timed interleaved after `warmup` calls each.

    A fast function is called several times per measurement so that each measurement lasts
    about `min_time_s` (timer resolution); a function whose first measurement takes longer than
    `slow_s` (a naive loop layer) is measured at most three times, so that the benchmark takes
    minutes, not hours.
    """
    calls: dict[str, int] = {}
    for name, fn in functions.items():
        start = time.perf_counter()
        for _ in range(max(warmup, 1)):
            fn()
        once = (time.perf_counter() - start) / max(warmup, 1)
        calls[name] = max(1, math.ceil(min_time_s / max(once, 1e-9)))
    times: dict[str, list[float]] = {name: [] for name in functions}
    for round_ in range(repeats):
        for name, fn in functions.items():
            if round_ >= 3 and times[name][0] > slow_s:
                continue
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            times[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(values) for name, values in times.items()}
