"""The training loop on its own, with a scripted task: the bookkeeping it keeps for every family
(losses, each metric's history, best and last values, the best weights, the summary's names),
the divergence rule, interrupts with the last checkpoint intact, and resuming from it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from cvlab.errors import UserError
from cvlab.records.files import CHECKPOINT_NAME
from cvlab.records.reader import RunFolder
from cvlab.records.state import load_state
from cvlab.train.core import LoopOptions, LoopResult, Records, run_loop, summary_metrics
from cvlab.train.signals import Interrupted
from cvlab.train.task import Task

QUIET = LoopOptions(verbose=False)


class ScriptedTask(Task):
    """A task whose losses and validation scores are given: 3 epochs of 4 updates; the
    'model' is one number that each update adds 1 to."""

    metric_columns = ("val_acc",)
    best_metric = "val_acc"
    best_of = ("val_acc",)

    def __init__(self, losses: list[float], scores: list[float], restores_best: bool = False,
                 stop_at: int | None = None) -> None:
        self.losses, self.scores, self.stop_at = losses, scores, stop_at
        self.restores_best = restores_best
        self.iteration = self.epoch = 0
        self.num_epochs, self.iterations_per_epoch, self.examples_per_update = 3, 4, 10
        self.weight = np.zeros(1)
        self.evaluations = 0

    def step(self) -> float:
        if self.stop_at is not None and self.iteration == self.stop_at:
            raise Interrupted()
        loss = self.losses[self.iteration]
        self.iteration += 1
        self.weight = self.weight + 1
        return loss

    def learning_rate(self) -> float:
        return 0.1

    def end_epoch(self) -> None:
        self.epoch += 1

    def should_evaluate(self, epoch_end: bool) -> bool:
        return epoch_end

    def evaluate(self) -> dict[str, float]:
        score = self.scores[self.evaluations]
        self.evaluations += 1
        return {"val_acc": score}

    def state(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "epoch": self.epoch, "weight": self.weight.copy(),
                "evaluations": self.evaluations}

    def load_state(self, state: dict[str, Any]) -> None:
        self.iteration, self.epoch = state["iteration"], state["epoch"]
        self.weight, self.evaluations = state["weight"].copy(), state["evaluations"]

    def weights(self) -> dict[str, Any]:
        return {"weight": self.weight.copy()}

    def load_weights(self, weights: dict[str, Any]) -> None:
        self.weight = weights["weight"].copy()

    def evaluate_split(self, split: str) -> dict[str, float]:
        return {f"{split}_acc": float(self.weight[0])}

    def scale_learning_rate(self, factor: float) -> None:
        pass


LOSSES = [2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0, 0.9]
SCORES = [0.3, 0.5, 0.4]  # the best evaluation is the second (after 8 updates)


def test_the_loop_keeps_every_record_once():
    task = ScriptedTask(LOSSES, SCORES)
    result = run_loop(task, QUIET)
    assert result.status == "completed"
    assert result.losses == LOSSES and result.first_loss == 2.0
    assert result.history == {"val_acc": SCORES}
    assert result.best == {"val_acc": 0.5} and result.last == {"val_acc": 0.4}
    assert result.best_weights["weight"][0] == 8  # the weights at the best evaluation
    assert task.weight[0] == 12  # not restored: the task does not ask for it
    assert result.updates == 12 and result.train_time_s > 0
    metrics = summary_metrics(task, result)
    assert metrics["best_val_acc"] == 0.5 and metrics["final_val_acc"] == 0.4
    assert metrics["final_loss"] == 0.9 and metrics["final_loss_window"] == 6
    assert metrics["final_loss_mean"] == pytest.approx(np.mean(LOSSES[-6:]))
    assert (metrics["iterations"], metrics["epochs"]) == (12, 3)
    assert metrics["images_per_s"] == pytest.approx(120 / result.train_time_s, rel=0.01)


def test_a_task_that_restores_its_best_weights_gets_them_back():
    task = ScriptedTask(LOSSES, SCORES, restores_best=True)
    result = run_loop(task, QUIET)
    assert task.weight[0] == 8
    assert result.last_weights["weight"][0] == 12 and result.best_weights["weight"][0] == 8


@pytest.mark.parametrize("bad, stopped_at", [(math.nan, 6), (2.0 * 1000 + 1, 6)])
def test_a_diverging_run_stops_at_the_diverging_update(tmp_path, bad, stopped_at):
    losses = [*LOSSES[:5], bad, *LOSSES[6:]]
    result = run_loop(ScriptedTask(losses, SCORES), QUIET, Records(tmp_path))
    assert result.status == "diverged"
    assert len(result.losses) == stopped_at
    assert list(RunFolder(tmp_path).metrics()["iteration"]) == list(range(1, 7))


def test_an_interrupt_keeps_the_last_checkpoint_and_a_resume_ends_as_if_uninterrupted(tmp_path):
    full = run_loop(ScriptedTask(LOSSES, SCORES), QUIET, Records(tmp_path / "full"))
    cut_dir = tmp_path / "cut"
    with pytest.raises(Interrupted) as stopped:
        run_loop(ScriptedTask(LOSSES, SCORES, stop_at=10), QUIET, Records(cut_dir))
    assert stopped.value.result.status == "interrupted"
    assert len(stopped.value.result.losses) == 10
    tree = load_state(cut_dir / CHECKPOINT_NAME)
    assert tree["task"]["iteration"] == 8  # the last epoch end before the interrupt

    task = ScriptedTask(LOSSES, SCORES)
    task.load_state(tree["task"])
    resumed = run_loop(task, QUIET, Records(tmp_path / "resumed", carry_from=cut_dir),
                       resumed=tree["loop"])
    assert resumed.losses == full.losses and resumed.history == full.history
    assert resumed.best == full.best and resumed.best_weights["weight"][0] == 8
    frame = RunFolder(tmp_path / "resumed").metrics()
    assert list(frame["iteration"]) == list(range(1, 13))  # no gap, no duplicate


def test_a_checkpoint_of_a_loop_that_kept_its_records_elsewhere_is_refused():
    with pytest.raises(UserError, match="older cvlab"):
        LoopResult.resumed({"losses": [1.0], "best": {}, "last_metrics": {}})


LN10 = math.log(10)


def scripted(losses: list[float], untrained_loss: float | None) -> ScriptedTask:
    task = ScriptedTask([*losses, *LOSSES[len(losses):]], SCORES)
    task.untrained_loss = untrained_loss
    return task


def test_a_first_loss_far_above_an_untrained_models_is_diverged_at_once(tmp_path):
    """model=fc model.weight_scale=1e9 starts at a loss of ~1e10 or more: the first-loss rule
    alone can never stop it; 1000 x ln 10 does, at the first update."""
    lines: list[str] = []
    options = LoopOptions(verbose=True, printer=lines.append)
    result = run_loop(scripted([1e10, 1e10], LN10), options, Records(tmp_path))
    assert result.status == "diverged" and result.losses == [1e10]
    assert any("above 2303 = 1000 x an untrained model's loss" in line for line in lines)
    assert run_loop(scripted([1e10, 1e10], None), QUIET).status == "completed"


@pytest.mark.parametrize("untrained_loss, status, kept", [
    (LN10, "diverged", 2),  # 2400 > 1000 x ln 10 = 2303, though < 1000 x the first loss
    (None, "completed", 12),  # a task that knows no untrained loss: the first loss only
    (100.0, "completed", 12),  # the smaller of the two counts: 1000 x 10 = 10000
])
def test_the_limit_is_the_factor_times_the_smaller_of_first_and_untrained_loss(
        untrained_loss, status, kept):
    result = run_loop(scripted([10.0, 2400.0], untrained_loss), QUIET)
    assert result.status == status and len(result.losses) == kept


def test_a_first_loss_below_the_untrained_one_keeps_the_first_loss_rule():
    result = run_loop(scripted([1.0, 1001.0], LN10), QUIET)
    assert result.status == "diverged" and len(result.losses) == 2


def test_the_courses_solver_knows_no_untrained_loss():
    from cvlab.train.solver import SolverTask
    from cvlab.train.task import untrained_softmax_loss

    assert Task.untrained_loss is None and SolverTask.untrained_loss is None
    assert untrained_softmax_loss(10) == pytest.approx(LN10)
    assert untrained_softmax_loss(1) is None
