"""SIGINT and SIGTERM as an exception the training loop and the command line handle: a run
that is stopped records `interrupted`, keeps its last checkpoint and exits 130 / 143.

    with signals_as_interrupts():
        ...                       # Interrupted is raised here when a signal arrives
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `exit_code` is 128 + the signal number (130 / 143)."""

    result: Any = None  # the loop's records at the interruption (cvlab.train.core.LoopResult)

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_requested: list[int] = []  # signals that arrived inside signals_as_interrupts


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise Interrupted (main thread only; elsewhere
    signals keep their handlers).

    Python drops an exception raised where it cannot propagate (a finalizer such as
    ZipFile.__del__ running when the signal arrives); the signal is therefore also recorded,
    and the training loop raises it at its next update (`raise_if_interrupted`). A second
    signal (Ctrl-C pressed twice, a launcher passing SIGTERM on) is recorded, not raised: the
    first one's records are being written.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        _requested.append(signum)
        if len(_requested) == 1:  # a second signal would cut short the records of the first
            raise Interrupted(signum)

    def unraisable(info: Any) -> None:  # an Interrupted dropped in a finalizer: no traceback
        if not isinstance(info.exc_value, Interrupted):
            default_hook(info)

    default_hook = sys.unraisablehook
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    sys.unraisablehook = unraisable
    _requested.clear()
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        sys.unraisablehook = default_hook
        _requested.clear()


def raise_if_interrupted() -> None:
    """Raise the Interrupted of a signal whose exception Python could not deliver."""
    if _requested:
        raise Interrupted(_requested[0])
