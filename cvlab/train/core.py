"""The training loop every family runs through: numpy models (Solver), PyTorch models and the
captioner. It owns what they share; a Task (the family's own code) owns the rest.

    result = run_loop(task, LoopOptions(print_every=10), records=Records(run_dir))

Per update the loop calls `task.step()`, and at the end of each epoch `task.end_epoch()`.
Evaluations (`task.evaluate()`) run where `task.should_evaluate(epoch_end)` says and after the
last update. The loop writes one metrics.csv row per update (the evaluation's numbers join the
row of the update they follow), prints the course's progress lines, draws the progress bar,
applies the divergence rule, saves a checkpoint (`task.state()`, cvlab.records.state) at each
epoch end, and turns SIGINT / SIGTERM into status `interrupted` with the last checkpoint intact.

Divergence rule: a run stops as `diverged` when a training loss is not finite, or exceeds
DIVERGENCE_FACTOR times the loss of its first update (a run whose loss grows a thousandfold is
not going to learn; its weights have blown up).
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cvlab.progress import ProgressReporter
from cvlab.records.files import CHECKPOINT_NAME
from cvlab.records.metrics import MetricsLogger

DIVERGENCE_FACTOR = 1000.0
BASE_COLUMNS = ("iteration", "epoch", "loss", "lr", "elapsed_s")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `exit_code` is 128 + the signal number (130 / 143)."""

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
    and the training loop raises it at its next update (`raise_if_interrupted`).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        _requested.append(signum)
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


class Task(Protocol):
    """What a family gives the loop. Counters count completed updates and epochs."""

    iteration: int
    epoch: int
    num_epochs: int
    iterations_per_epoch: int
    metric_columns: tuple[str, ...]  # the columns evaluate() fills, e.g. train_acc, val_acc
    flush_every: int  # updates whose losses may be read together (1: read each at once)

    def step(self) -> Any: ...  # one update; its loss (a float, or a value to_floats reads)
    def to_floats(self, losses: list[Any]) -> list[float]: ...
    def learning_rate(self) -> float | None: ...  # the rate the next update uses
    def end_epoch(self) -> None: ...  # after the epoch's last update (epoch += 1, decay, ...)
    def should_evaluate(self, epoch_end: bool) -> bool: ...
    def evaluate(self) -> dict[str, float]: ...
    def describe(self, metrics: dict[str, float]) -> str: ...  # the evaluation's line, or ""
    def state(self) -> dict[str, Any]: ...
    def load_state(self, state: dict[str, Any]) -> None: ...
    def finish(self, status: str) -> None: ...  # after the loop (e.g. restore best params)


class SolverAdapter:
    """A course-style solver as a Task: one with `iteration`, `epoch`, `num_epochs`,
    `iterations_per_epoch`, `_step()` (one update, its loss), `_end_epoch()` and
    `state()` / `load_state()`. Subclasses add the learning rate and the evaluations."""

    metric_columns: tuple[str, ...] = ()
    flush_every = 1

    def __init__(self, solver: Any) -> None:
        self.solver = solver

    @property
    def iteration(self) -> int:
        return self.solver.iteration

    @property
    def epoch(self) -> int:
        return self.solver.epoch

    @property
    def num_epochs(self) -> int:
        return self.solver.num_epochs

    @property
    def iterations_per_epoch(self) -> int:
        return self.solver.iterations_per_epoch

    def step(self) -> float:
        loss = self.solver._step()
        self.solver.iteration += 1
        return loss

    def to_floats(self, losses: list[Any]) -> list[float]:
        return [float(v) for v in losses]

    def end_epoch(self) -> None:
        self.solver._end_epoch()

    def state(self) -> dict[str, Any]:
        return self.solver.state()

    def load_state(self, state: dict[str, Any]) -> None:
        self.solver.load_state(state)

    def finish(self, status: str) -> None:
        pass


@dataclass
class LoopOptions:
    print_every: int = 10
    verbose: bool = True  # the course's iteration and evaluation lines
    progress: bool = False  # a progress bar (a terminal) or periodic lines
    description: str = "train"
    stop_on_divergence: bool = True
    divergence_factor: float = DIVERGENCE_FACTOR
    printer: Callable[[str], None] = print
    iteration_printer: Callable[[str], None] | None = None  # default: printer


@dataclass
class Records:
    """Where the loop writes: metrics.csv (continuing `carry_from`'s rows on a resume) and a
    checkpoint at each epoch end (when `checkpoint`)."""

    run_dir: Path
    checkpoint: bool = True
    carry_from: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # saved with each checkpoint
    sinks: list[Any] = field(default_factory=list)  # more writers of each row (TensorBoard)


@dataclass
class LoopResult:
    status: str  # completed | diverged | interrupted
    losses: list[float] = field(default_factory=list)  # every update's loss, this run and before
    first_loss: float | None = None
    train_time_s: float = 0.0  # loop time minus evaluations and checkpoints, in this process
    updates: int = 0  # updates done in this process (a resumed run counts anew)
    last_metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)  # best value of each metric


def final_loss_window(iterations: int) -> int:
    """The number of last updates whose mean is a run's final loss: half the run, at most 100
    (the course's "mean of the last 100 iterations" of its 200-iteration sweep runs)."""
    return max(1, min(100, iterations // 2))


def final_loss_metrics(losses: list[float]) -> dict[str, float | int | None]:
    """final_loss (last update), final_loss_mean and final_loss_window."""
    if not losses:
        return {"final_loss": None, "final_loss_mean": None, "final_loss_window": 0}
    window = final_loss_window(len(losses))
    tail = losses[-window:]
    mean = math.fsum(tail) / len(tail) if all(math.isfinite(v) for v in tail) else math.inf
    return {"final_loss": losses[-1], "final_loss_mean": mean, "final_loss_window": window}


class _Loop:
    """One run of the loop; see run_loop."""

    def __init__(self, task: Task, options: LoopOptions, records: Records | None,
                 result: LoopResult) -> None:
        self.task, self.options, self.records, self.result = task, options, records, result
        self.total = task.num_epochs * task.iterations_per_epoch
        self.pending: list[tuple[int, int, Any, float | None]] = []
        self.logger: MetricsLogger | None = None
        self.excluded_s = 0.0  # time in evaluations and checkpoints
        self.reporter = ProgressReporter(self.total, options.description,
                                         enabled=options.progress, printer=options.printer)

    def say(self, line: str, iteration: bool = False) -> None:
        if self.options.verbose:
            printer = self.options.iteration_printer if iteration else None
            (printer or self.options.printer)(line)

    def open_records(self) -> None:
        if self.records is None:
            return
        columns = (*BASE_COLUMNS[:3], *self.task.metric_columns, *BASE_COLUMNS[3:])
        self.logger = MetricsLogger(self.records.run_dir, columns,
                                    carry_from=self.records.carry_from,
                                    carry_up_to=self.task.iteration)

    def settle(self) -> tuple[list[tuple[int, int, float, float | None]], bool]:
        """Read the buffered losses: the rows up to the first diverging one, and whether the
        run diverged. Prints the course's iteration lines."""
        values = self.task.to_floats([p[2] for p in self.pending])
        rows = []
        for (iteration, epoch, _, lr), loss in zip(self.pending, values):
            rows.append((iteration, epoch, loss, lr))
            self.result.losses.append(loss)
            if self.result.first_loss is None:
                self.result.first_loss = loss
            if (iteration - 1) % self.options.print_every == 0:
                self.say(f"(Iteration {iteration} / {self.total}) loss: {loss:f}", True)
            if self.options.stop_on_divergence and self.diverging(loss):
                self.say(f"loss is {loss:g} at iteration {iteration}: the run diverged "
                         f"(non-finite, or above {self.options.divergence_factor:g} x the first "
                         "loss); stopping")
                self.pending.clear()
                return rows, True
        self.pending.clear()
        return rows, False

    def write(self, rows: list[tuple[int, int, float, float | None]],
              metrics: dict[str, float] | None) -> None:
        """One metrics.csv row per update (and to each sink); `metrics` joins the last row."""
        if self.logger is None:
            return
        for k, (iteration, epoch, loss, lr) in enumerate(rows):
            extra = metrics if (metrics and k == len(rows) - 1) else {}
            row = {"iteration": iteration, "epoch": epoch, "loss": loss, "lr": lr, **extra}
            self.logger.log(**row)
            for sink in self.records.sinks:
                sink.log(row)

    def diverging(self, loss: float) -> bool:
        first = self.result.first_loss
        return not math.isfinite(loss) or (
            first is not None and first > 0 and loss > self.options.divergence_factor * first)

    def evaluate(self) -> dict[str, float]:
        metrics = self.task.evaluate()
        self.result.last_metrics = dict(metrics)
        for name, value in metrics.items():
            best = self.result.best.get(name)
            if value is not None and math.isfinite(value) and (best is None or value > best):
                self.result.best[name] = value
        line = self.task.describe(metrics)
        if line:
            self.say(line)
        return metrics

    def checkpoint(self) -> None:
        if self.records is not None and self.records.checkpoint:
            from cvlab.records.state import save_state

            save_state(self.records.run_dir / CHECKPOINT_NAME,
                       {"meta": self.records.meta, "loop": self.loop_state(),
                        "task": self.task.state()})

    def loop_state(self) -> dict[str, Any]:
        return {"losses": list(self.result.losses), "first_loss": self.result.first_loss,
                "best": dict(self.result.best), "last_metrics": dict(self.result.last_metrics)}

    def one_update(self) -> bool:
        """Step, epoch end, evaluation, records; False when the run diverged."""
        task = self.task
        lr = task.learning_rate()
        loss = task.step()
        epoch_end = task.iteration % task.iterations_per_epoch == 0
        if epoch_end:
            task.end_epoch()
        self.result.updates += 1
        self.pending.append((task.iteration, task.epoch, loss, lr))
        evaluate = task.should_evaluate(epoch_end) or task.iteration == self.total
        if evaluate or epoch_end or len(self.pending) >= task.flush_every:
            rows, diverged = self.settle()
            self.write(rows, self.timed(self.evaluate) if evaluate and not diverged else None)
            if diverged:
                return False
        self.reporter.advance(1, loss=self.result.losses[-1] if self.result.losses else None,
                              **self.result.last_metrics)
        if epoch_end:
            self.timed(self.checkpoint)
        return True

    def timed(self, work: Callable[[], Any]) -> Any:
        """Run `work` outside the training time (evaluations, checkpoints)."""
        start = time.perf_counter()
        try:
            return work()
        finally:
            self.excluded_s += time.perf_counter() - start

    def run(self) -> str:
        self.open_records()
        start = time.perf_counter()
        try:
            with self.reporter:
                self.reporter.advance(self.task.iteration)
                while self.task.iteration < self.total:
                    if not self.one_update():
                        return "diverged"
                    raise_if_interrupted()
            return "completed"
        finally:
            self.result.train_time_s = time.perf_counter() - start - self.excluded_s
            if self.logger is not None:
                self.logger.close()


def run_loop(task: Task, options: LoopOptions | None = None, records: Records | None = None,
             resumed: dict[str, Any] | None = None) -> LoopResult:
    """Train `task` to its last update (or until it diverges or is interrupted).

    `resumed` is the loop part of a checkpoint (with the task already loaded from its own
    part). Interrupted propagates after the result is complete: the caller records it.
    """
    options = options or LoopOptions()
    result = LoopResult(status="running")
    if resumed:
        result.losses = [float(v) for v in resumed.get("losses", [])]
        result.first_loss = resumed.get("first_loss")
        result.best = dict(resumed.get("best", {}))
        result.last_metrics = dict(resumed.get("last_metrics", {}))
    loop = _Loop(task, options, records, result)
    try:
        result.status = loop.run()
    except Interrupted as interrupted:
        result.status = "interrupted"
        interrupted.result = result  # type: ignore[attr-defined]
        raise
    finally:
        task.finish(result.status)
    return result
