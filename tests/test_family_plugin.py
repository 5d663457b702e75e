"""A new training family is one module, plus its model types: written into folders of its own
(a family that trains a softmax classifier by plain gradient descent with its own task, and one
model type that names it), it trains, resumes, evaluates and plots through `cvlab` like the
built-in families, and the config layer applies its declared rules."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_DATA

from cvlab.records.reader import RunFolder

FAMILY = '''
"""Softmax regression by full-batch gradient descent: a family with a task of its own."""
import numpy as np

from cvlab.data import load_splits, preprocess
from cvlab.families import Family, Prepared
from cvlab.train.task import Task


class GradientDescentTask(Task):
    metric_columns = ("val_acc",)
    best_metric = "val_acc"
    best_of = ("val_acc",)

    def __init__(self, weights, data, epochs, learning_rate):
        self.W, self.data, self.rate = weights, data, learning_rate
        self.iteration = self.epoch = 0
        self.num_epochs, self.iterations_per_epoch = epochs, 2
        self.examples_per_update = len(data["y_train"])

    def _scores(self, X):
        return X.reshape(len(X), -1) @ self.W

    def step(self):
        X, y = self.data["X_train"], self.data["y_train"]
        scores = self._scores(X)
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        loss = -np.log(probs[np.arange(len(y)), y]).mean()
        probs[np.arange(len(y)), y] -= 1
        self.W -= self.rate * X.reshape(len(X), -1).T @ probs / len(y)
        self.iteration += 1
        return float(loss)

    def learning_rate(self):
        return self.rate

    def end_epoch(self):
        self.epoch += 1

    def should_evaluate(self, epoch_end):
        return epoch_end

    def evaluate(self):
        return self.evaluate_split("val")

    def evaluate_split(self, split):
        X, y = self.data[f"X_{split}"], self.data[f"y_{split}"]
        return {f"{split}_acc": float(np.mean(self._scores(X).argmax(axis=1) == y))}

    def state(self):
        return {"W": self.W.copy(), "iteration": self.iteration, "epoch": self.epoch}

    def load_state(self, state):
        self.W, self.iteration, self.epoch = state["W"].copy(), state["iteration"], state["epoch"]

    def weights(self):
        return {"W": self.W.copy()}

    def load_weights(self, weights):
        if weights["W"].shape != self.W.shape:
            raise ValueError(f"W is {weights['W'].shape}, the model's {self.W.shape}")
        self.W = weights["W"].copy()

    def scale_learning_rate(self, factor):
        self.rate *= factor


class GradientDescentFamily(Family):
    name = "gradient_descent"
    words = "gradient-descent models"
    datasets = ("synthetic",)
    unused_fields = ("optimizer.schedule", "device.amp")

    def prepare(self, cfg, model, build, announce):
        splits = load_splits(cfg.dataset, announce=announce)
        data = preprocess(splits, dtype=np.float64)
        weights = build(model, int(np.prod(data["X_train"].shape[1:])), splits.num_classes)
        task = GradientDescentTask(weights, data, cfg.epochs, cfg.optimizer.learning_rate)
        return Prepared(task=task, dataset=splits.name, device="cpu")


GRADIENT_DESCENT = GradientDescentFamily()
'''

MODEL = '''
"""The softmax classifier the gradient-descent family trains."""
from dataclasses import dataclass

import numpy as np

from cvlab.config.train import ModelConfig
from cvlab.families.gradient_descent import GRADIENT_DESCENT
from cvlab.models.registry import ModelSpec, register


@dataclass
class LinearSoftmaxConfig(ModelConfig):
    type: str = "linear_softmax"
    weight_scale: float = 1e-3


def build(cfg, input_dim, num_classes):
    return cfg.weight_scale * np.random.RandomState(0).randn(input_dim, num_classes)


SPEC = register(ModelSpec(name="linear_softmax", family=GRADIENT_DESCENT,
                          schema=LinearSoftmaxConfig, build=build))
'''

YAML = "defaults:\n  - linear_softmax_schema\n  - _self_\n"
RUN = ["model=linear_softmax", *TINY_DATA, "optimizer=sgd", "optimizer.learning_rate=3e-6",
       "epochs=2", "progress=false"]


@pytest.fixture
def new_family(plug_in):
    """The family's module, and the model type's module and YAML, found as cvlab.families's
    and cvlab.models's own."""
    return [*plug_in({("families", "gradient_descent"): FAMILY,
                      ("models", "linear_softmax"): MODEL}, {"linear_softmax": YAML}),
            "launcher=basic"]


def test_a_new_family_trains_resumes_evaluates_and_plots(cvlab, tmp_path, new_family):
    first = cvlab("train", *RUN, *new_family)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "outputs" / "train").glob("*/*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["family"], summary["model_type"]) == (
        "completed", "gradient_descent", "linear_softmax")
    losses = list(RunFolder(run_dir).metrics()["loss"].dropna())
    assert len(losses) == summary["metrics"]["iterations"] == 4
    assert losses[-1] < losses[0]  # it learned
    assert {"model.npz", "model_best.npz", "checkpoint.npz"} <= set(summary["files"])

    resumed = cvlab("train", f"resume={run_dir}", "epochs=3", *new_family)
    assert resumed.returncode == 0, resumed.stderr
    resumed_dir = max((tmp_path / "outputs" / "train").glob("*/*"))
    assert json.loads((resumed_dir / "summary.json").read_text())["metrics"]["iterations"] == 6

    evaluated = cvlab("eval", f"run={run_dir}", *new_family[:1])
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["metrics"]["val_acc"] == summary["metrics"]["best_val_acc"]
    assert cvlab("plot", f"run={run_dir}").returncode == 0
    assert (run_dir / "plots" / "curves.png").is_file()


def test_the_config_layer_applies_the_new_familys_declared_rules(cvlab, new_family):
    unused = cvlab("train", *RUN, "optimizer.schedule=step", *new_family)
    assert unused.returncode == 2
    assert "gradient-descent models (model.type=linear_softmax) do not use it" in unused.stderr
    dataset = cvlab("train", *RUN, "dataset=cifar10", *new_family)
    assert dataset.returncode == 2
    assert "train on auto, synthetic" in dataset.stderr
