"""The numpy layers' threading policy: one per process, set once, never toggled per call.

Under the policy (`set_threads(n)`, or the block `with use_threads(n):`), numpy's BLAS runs
single-threaded in every thread and the layers that have parallel work (the fast conv and the
fused conv-relu-pool, large affine layers, the in-place update rules) split it between `n`
threads: the calling thread and n - 1 persistent helpers. The work is cut into fixed items
(images, row blocks, element ranges) that the threads claim one at a time, so a thread that
another process keeps off its core simply claims fewer items; a 2-thread BLAS call, which
splits its work in two fixed halves, waits for the slower half instead. Results do not depend
on the number of threads: the items and the order in which their partial results are added
are the same for any count.

Without the policy (a plain `import cvlab.layers`, or BLAS given more than one thread again
by someone else) the layers run in the calling thread and leave the threading to BLAS.
`threads()` says how many threads the layers use now.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterator

_policy: list[int] = []  # the configured thread count, when a policy is in force
_local = threading.local()  # .inside: this thread is running an item of a parallel region
_blas: list = []  # threadpoolctl's controller of numpy's BLAS (None: none it knows)


def _blas_controller():
    if not _blas:
        try:
            from threadpoolctl import ThreadpoolController

            _blas.append(ThreadpoolController().select(user_api="blas"))
        except Exception:  # noqa: BLE001 - no threadpoolctl or no BLAS it knows
            _blas.append(None)
    return _blas[0]


def blas_threads() -> int:
    """The number of threads numpy's BLAS uses now (1 when it cannot be told)."""
    controller = _blas_controller()
    if controller is None or not controller.lib_controllers:
        return 1
    return max(lib.num_threads for lib in controller.lib_controllers)


def _pin_blas_to_one_thread() -> None:
    controller = _blas_controller()
    if controller is not None and controller.lib_controllers:
        controller.limit(limits=1)


def set_threads(count: int | None = None) -> int:
    """Adopt the policy for the rest of the process: `count` threads for the layers (default:
    the number numpy's BLAS has now) and BLAS single-threaded. Returns the count."""
    count = blas_threads() if count is None else int(count)
    if count < 1:
        raise ValueError(f"threads must be a positive integer, got {count}")
    _pin_blas_to_one_thread()
    _policy[:] = [count]
    return count


@contextlib.contextmanager
def use_threads(count: int | None = None) -> Iterator[int]:
    """The policy inside the block (`count` as for set_threads); the previous policy and BLAS
    thread counts are restored afterwards. Yields the count."""
    controller = _blas_controller()
    saved_blas = controller.info() if controller is not None else None
    saved_policy = list(_policy)
    try:
        yield set_threads(count)
    finally:
        _policy[:] = saved_policy
        if saved_blas is not None:
            for lib, info in zip(controller.lib_controllers, saved_blas):
                lib.set_num_threads(info["num_threads"])


def configured() -> int | None:
    """The policy's thread count, or None when no policy is in force."""
    return _policy[0] if _policy else None


def threads() -> int:
    """Threads the layers split their work between now: the policy's count while BLAS is
    single-threaded, else 1 (BLAS threads and the layers' threads never run at once)."""
    if not _policy or _policy[0] <= 1 or getattr(_local, "inside", False):
        return 1
    return _policy[0] if blas_threads() == 1 else 1


class _Helpers:
    """Persistent daemon threads that run jobs handed to them (created on first use; after a
    fork the child starts its own)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._count = 0
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def _serve(self) -> None:
        _local.inside = True
        while True:
            self._jobs.get()()

    def submit(self, job: Callable[[], None], helpers: int) -> None:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's threads do not exist here
                self._jobs, self._count, self._pid = queue.SimpleQueue(), 0, os.getpid()
            while self._count < helpers:
                threading.Thread(target=self._serve, name=f"cvlab-layers-{self._count}",
                                 daemon=True).start()
                self._count += 1
        for _ in range(helpers):
            self._jobs.put(job)


_helpers = _Helpers()


def for_each(count: int, work: Callable[[int], object]) -> None:
    """Call work(i) for every i in range(count), split between threads() threads.

    Each thread claims the next unclaimed item until none is left; the call returns when all
    items are done. An exception in any item is re-raised here (the other items still run).
    work must write its results into places of its own (per item), never shared state.
    """
    workers = min(threads(), count)
    if workers <= 1:
        for i in range(count):
            work(i)
        return
    items = itertools.count()  # next() on it is atomic under the GIL
    finished = itertools.count(1)
    all_done = threading.Event()
    errors: list[BaseException] = []

    def claim_items() -> None:
        for i in iter(items.__next__, None):
            if i >= count:
                return
            try:
                work(i)
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller
                errors.append(err)
            if next(finished) == count:
                all_done.set()

    _helpers.submit(claim_items, workers - 1)
    _local.inside = True
    try:
        claim_items()
    finally:
        _local.inside = False
    all_done.wait()
    if errors:
        raise errors[0]


def split(total: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous (start, stop) ranges covering range(total), sizes differing by <= 1."""
    parts = max(1, min(parts, total))
    bounds = [total * i // parts for i in range(parts + 1)]
    return list(itertools.pairwise(bounds))
