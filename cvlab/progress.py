"""The console and progress reporting: a rich progress bar on a terminal, plain periodic lines
otherwise.

`console` is the one rich console cvlab prints tables through: on a terminal it follows the
terminal's width; piped or logged it is wide (NON_TERMINAL_WIDTH) and never wraps a line, so
that file paths in logs stay whole.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

NON_TERMINAL_WIDTH = 200


def make_console(markup: bool = True) -> Console:
    """A console on stdout: the terminal's width, or wide and unwrapped when not a terminal.
    `markup=False` for tables of recorded values (overrides, tags, paths): `[a]` and `[/x]` in
    them are text, not Rich markup."""
    terminal = sys.stdout.isatty()
    return Console(width=None if terminal else NON_TERMINAL_WIDTH, soft_wrap=not terminal,
                   markup=markup)


console = make_console()


def is_interactive() -> bool:
    return sys.stdout.isatty()


class ProgressReporter:
    """Reports `total` steps of work.

    On a terminal it draws a rich bar; elsewhere (CI, parallel sweeps, files) it prints one
    plain line at most every `every_s` seconds and at the end. Use as a context manager and
    call `advance(n, **fields)` with the numbers to show (loss=..., val_acc=...).
    """

    def __init__(
        self,
        total: int,
        description: str,
        every_s: float = 10.0,
        enabled: bool = True,
        printer: Callable[[str], None] | None = None,
    ) -> None:
        self.total = max(int(total), 1)
        self.description = description
        self.every_s = every_s
        self.enabled = enabled
        self.interactive = enabled and is_interactive()
        self.printer = printer or (lambda line: print(line, flush=True))
        self.done = 0
        self.fields: dict[str, object] = {}
        self._progress: Progress | None = None
        self._task = None
        self._last = 0.0

    def __enter__(self) -> ProgressReporter:
        self._start = time.perf_counter()
        self._last = self._start
        if self.interactive:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, info="")
        return self

    def _info(self) -> str:
        parts = []
        for key, value in self.fields.items():
            parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
        return " ".join(parts)

    def advance(self, n: int = 1, **fields: object) -> None:
        self.done += n
        self.fields.update(fields)
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.update(self._task, advance=n, info=self._info())
            return
        now = time.perf_counter()
        if now - self._last >= self.every_s or self.done >= self.total:
            self._last = now
            self.printer(
                f"{self.description}: {self.done}/{self.total} "
                f"({now - self._start:.1f}s) {self._info()}".rstrip()
            )

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
