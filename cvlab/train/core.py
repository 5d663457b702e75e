"""The training loop every family runs through: numpy models (Solver), PyTorch models and the
captioner. It owns what they share; a Task (cvlab.train.task) owns the rest.

    result = run_loop(task, LoopOptions(print_every=10), records=Records(run_dir))

Per update the loop calls `task.step()`, and at the end of each epoch `task.end_epoch()`.
Evaluations (`task.evaluate()`) run where `task.should_evaluate(epoch_end)` says and after the
last update. The loop keeps the run's bookkeeping, once for every family: every loss, each
metric's history, best and last value, the best weights (by `task.best_metric`), the training
time and the number of updates (LoopResult). It writes one metrics.csv row per update (the
evaluation's numbers join the row of the update they follow), prints the course's progress
lines, draws the progress bar, applies the divergence rule, saves a checkpoint (the task's
state and the loop's own, cvlab.records.state) at each epoch end, and turns SIGINT / SIGTERM
into status `interrupted` with the last checkpoint intact.

Divergence rule: a run stops as `diverged` when a training loss is not finite, or exceeds
DIVERGENCE_FACTOR times the smaller of two losses: the loss of its first update, and the loss
of a model that knows nothing (`task.untrained_loss`: ln C for a C-class softmax classifier;
a task that does not know it leaves it None and only the first loss counts). A run whose loss
grows a thousandfold is not going to learn: its weights have blown up. The untrained loss also
judges the first update itself: a mean loss above 1000 x ln 10 = 2303 for a 10-class
classifier gives the right class a probability of about e^-2303 (geometric mean): its scores
have blown up as surely as those of a run whose loss grew, and such runs stay at chance (the
baseline runs at the largest scales of sweep=weight_scale), so a run that starts there
(model=fc model.weight_scale=1e9: a first loss of ~1e32) is `diverged` at its first update,
not `completed`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvlab.errors import UserError
from cvlab.progress import ProgressReporter
from cvlab.records.files import CHECKPOINT_NAME
from cvlab.records.metrics import MetricsLogger
from cvlab.train.signals import Interrupted, raise_if_interrupted
from cvlab.train.task import Task, Weights

DIVERGENCE_FACTOR = 1000.0
BASE_COLUMNS = ("iteration", "epoch", "loss", "lr", "elapsed_s")
LOOP_FORMAT = 2  # the loop part of a checkpoint; 1 kept the best weights in the task's part


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
    """A run's bookkeeping, kept by the loop for every family (and stored in checkpoints)."""

    status: str  # running | completed | diverged | interrupted
    losses: list[float] = field(default_factory=list)  # every update's loss, this run and before
    first_loss: float | None = None
    history: dict[str, list[float]] = field(default_factory=dict)  # each metric, per evaluation
    best: dict[str, float] = field(default_factory=dict)  # best value of each metric
    last: dict[str, float] = field(default_factory=dict)  # the last evaluation's values
    best_weights: Weights | None = None  # at the best `task.best_metric`
    last_weights: Weights | None = None  # at the last update (set when the best are restored)
    train_time_s: float = 0.0  # loop time minus evaluations and checkpoints, in this process
    updates: int = 0  # updates done in this process (a resumed run counts anew)

    def throughput(self, examples_per_update: int) -> float | None:
        """Training examples per second of training time, in this process."""
        if self.train_time_s <= 0 or not self.updates:
            return None
        return round(self.updates * examples_per_update / self.train_time_s, 1)

    def state(self) -> dict[str, Any]:
        """The loop's part of a checkpoint."""
        return {"format": LOOP_FORMAT, "losses": list(self.losses),
                "first_loss": self.first_loss, "history": self.history, "best": self.best,
                "last": self.last, "best_weights": self.best_weights}

    @classmethod
    def resumed(cls, state: dict[str, Any]) -> LoopResult:
        """A running result continuing the loop part of a checkpoint; UserError when it was
        written by a loop that kept its bookkeeping elsewhere."""
        if state.get("format") != LOOP_FORMAT:
            raise UserError(f"the checkpoint was written by an older cvlab (loop format "
                            f"{state.get('format', 1)}, this one reads {LOOP_FORMAT}); it "
                            "cannot be continued: start a new run")
        return cls(status="running", losses=[float(v) for v in state["losses"]],
                   first_loss=state["first_loss"],
                   history={k: [float(v) for v in values]
                            for k, values in state["history"].items()},
                   best=dict(state["best"]), last=dict(state["last"]),
                   best_weights=state["best_weights"])


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
                         f"({self.describe_rule()}); stopping")
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
        """Whether `loss` breaks the divergence rule (see the module docstring)."""
        limit = self.loss_limit()
        return not math.isfinite(loss) or (limit is not None and loss > limit)

    def limit_basis(self) -> tuple[float, str] | None:
        """The loss the divergence limit is a multiple of, and its name: the smaller of the
        first loss and the task's untrained loss (those known and > 0); None: no limit."""
        known = [(value, name) for value, name in
                 ((self.result.first_loss, "the first loss"),
                  (self.task.untrained_loss, "an untrained model's loss"))
                 if value is not None and math.isfinite(value) and value > 0]
        return min(known) if known else None

    def loss_limit(self) -> float | None:
        """The loss above which the run has diverged (None: only a non-finite loss is)."""
        basis = self.limit_basis()
        return None if basis is None else self.options.divergence_factor * basis[0]

    def describe_rule(self) -> str:
        """`non-finite, or above 2303 = 1000 x an untrained model's loss`: the rule, in words."""
        basis = self.limit_basis()
        if basis is None:
            return "non-finite"
        return f"non-finite, or above {self.options.divergence_factor * basis[0]:.4g} = " \
               f"{self.options.divergence_factor:g} x {basis[1]}"

    def evaluate(self) -> dict[str, float]:
        metrics = self.task.evaluate()
        result = self.result
        result.last = dict(metrics)
        for name, value in metrics.items():
            result.history.setdefault(name, []).append(value)
            best = result.best.get(name)
            if value is not None and math.isfinite(value) and (best is None or value > best):
                result.best[name] = value
                if name == self.task.best_metric:
                    result.best_weights = self.task.weights()
        line = self.task.describe(metrics)
        if line:
            self.say(line)
        return metrics

    def checkpoint(self) -> None:
        if self.records is not None and self.records.checkpoint:
            from cvlab.records.state import save_state

            save_state(self.records.run_dir / CHECKPOINT_NAME,
                       {"meta": self.records.meta, "loop": self.result.state(),
                        "task": self.task.state()})

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
                              **self.result.last)
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
             resumed: dict[str, Any] | None = None,
             result: LoopResult | None = None) -> LoopResult:
    """Train `task` to its last update (or until it diverges or is interrupted).

    `resumed` is the loop part of a checkpoint (with the task already loaded from its own
    part); `result`, when given, is where the records go (so that a caller has them however
    the loop ends). When the loop ends, however it ends, a task that `restores_best` gets its
    best weights back (the last ones are kept in `last_weights`). A signal (Interrupted) or a
    scheduler's exit (SystemExit) propagates after the result is complete, marked
    `interrupted`: the caller records it (`interrupted.result` too).
    """
    options = options or LoopOptions()
    if result is None:
        result = LoopResult.resumed(resumed) if resumed else LoopResult(status="running")
    loop = _Loop(task, options, records, result)
    try:
        result.status = loop.run()
    except Interrupted as interrupted:
        result.status = "interrupted"
        interrupted.result = result
        raise
    except SystemExit:  # a scheduler's signal handler ending the job (submitit's requeue)
        result.status = "interrupted"
        raise
    finally:
        _restore_best(task, result)
    return result


def _restore_best(task: Task, result: LoopResult) -> None:
    if task.restores_best and result.best_weights is not None:
        result.last_weights = task.weights()
        task.restore_best(result.best_weights)
        result.best_weights = task.weights()


def summary_metrics(task: Task, result: LoopResult) -> dict[str, Any]:
    """The final numbers of a run, from the loop's records: the final losses, the best and
    last value of the task's metrics (best_<m> for its `best_of`, <final_prefix><m> for each
    metric column), the counters, the training time and throughput, and the task's extras."""
    metrics: dict[str, Any] = dict(final_loss_metrics(result.losses))
    for name in task.best_of:
        metrics[f"best_{name}"] = result.best.get(name)
    for name in task.metric_columns:
        metrics[f"{task.final_prefix}{name}"] = result.last.get(name)
    metrics.update(iterations=task.iteration, epochs=task.epoch,
                   train_time_s=round(result.train_time_s, 3))
    metrics[task.throughput_name] = result.throughput(task.examples_per_update)
    metrics.update(task.extra_metrics())
    return metrics
