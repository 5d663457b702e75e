"""Speed benchmarks (`cvlab bench layers|train`) and the timing helpers they share.

Timings are medians of repeated calls with warm-up calls excluded; functions compared with
each other are timed interleaved (A, B, A, B, ...) so that load from other processes falls on
all of them alike, and results are reported as ratios measured side by side.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator


def numpy_threads() -> int:
    """The number of threads numpy's BLAS uses (1 when it cannot be told)."""
    from threadpoolctl import threadpool_info

    counts = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return max(counts) if counts else 1


@contextlib.contextmanager
def thread_count(threads: int | None) -> Iterator[int]:
    """Set numpy's BLAS and PyTorch to the same thread count (numpy's when `threads` is None);
    yields it and restores both afterwards."""
    import torch
    from threadpoolctl import threadpool_limits

    count = int(threads) if threads else numpy_threads()
    saved = torch.get_num_threads()
    with threadpool_limits(limits=count, user_api="blas"):
        torch.set_num_threads(count)
        try:
            yield count
        finally:
            torch.set_num_threads(saved)


def median_times(functions: dict[str, Callable[[], object]], repeats: int, warmup: int,
                 slow_s: float = 1.0, min_time_s: float = 0.005,
                 pause_s: float = 0.0) -> dict[str, float]:
    """Median seconds per call of each function, timed interleaved after `warmup` calls each.

    A fast function is called several times per measurement so that each measurement lasts
    about `min_time_s` (timer resolution); a function whose first measurement takes longer than
    `slow_s` (a naive loop layer) is measured at most three times, so that the benchmark takes
    minutes, not hours. With `pause_s` > 0 each measurement starts with a pause and one untimed
    call: thread pools of different libraries (OpenBLAS, PyTorch's OpenMP) spin for a while after
    their work, and would otherwise steal the cores from the function timed next.
    """
    calls: dict[str, int] = {}
    for name, fn in functions.items():
        if pause_s:
            time.sleep(pause_s)
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
            if pause_s:
                time.sleep(pause_s)
                fn()
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            times[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(values) for name, values in times.items()}
