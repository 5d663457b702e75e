"""A new model type is its module and its YAML option, nothing else: written into a folder of
its own, it trains, plots, evaluates and resumes through `cvlab` like the built-in ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY_DATA

MODULE = '''
"""Softmax regression on the flattened image, as a numpy model."""
from dataclasses import dataclass

import numpy as np

from cvlab.config.train import ModelConfig
from cvlab.families.numpy import NUMPY
from cvlab.layers import affine_backward, affine_forward, softmax_loss
from cvlab.models.registry import ModelSpec, register


@dataclass
class SoftmaxRegressionConfig(ModelConfig):
    type: str = "softmax_regression"
    weight_scale: float = 1e-3


class SoftmaxRegression:
    def __init__(self, input_dim, num_classes, weight_scale, rng):
        self.params = {"W": weight_scale * rng.randn(input_dim, num_classes),
                       "b": np.zeros(num_classes)}

    def loss(self, X, y=None):
        scores, cache = affine_forward(X, self.params["W"], self.params["b"])
        if y is None:
            return scores
        loss, dscores = softmax_loss(scores, y)
        _, dW, db = affine_backward(dscores, cache)
        return loss, {"W": dW, "b": db}


def build(cfg, input_shape, num_classes, rng):
    return SoftmaxRegression(int(np.prod(input_shape)), num_classes, cfg.weight_scale, rng)


SPEC = register(ModelSpec(name="softmax_regression", family=NUMPY,
                          schema=SoftmaxRegressionConfig, build=build))
'''

YAML = """\
# model=softmax: softmax regression
defaults:
  - softmax_regression_schema
  - _self_
"""

TINY = [*TINY_DATA, "epochs=2", "batch_size=25", "progress=false"]


@pytest.fixture
def new_model(plug_in):
    """The two files of a new model: its module (found as cvlab.models's own, as a file in
    cvlab/models/ would be) and its YAML option (through Hydra's search path)."""
    return plug_in({("models", "softmax_regression"): MODULE}, {"softmax": YAML})


def test_a_new_model_trains_plots_evaluates_and_resumes(cvlab, tmp_path, new_model):
    result = cvlab("train", "model=softmax", *new_model, *TINY, "launcher=basic")
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "outputs" / "train").glob("*/*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["family"], summary["model_type"]) == (
        "completed", "numpy", "softmax_regression")
    assert summary["metrics"]["best_val_acc"] > 0.2  # chance is 0.1: it learned

    assert cvlab("plot", f"run={run_dir}").returncode == 0
    assert (run_dir / "report.md").exists()
    evaluated = cvlab("eval", f"run={run_dir}")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((run_dir / "eval.json").read_text())["model_type"] == "softmax_regression"

    resumed = cvlab("train", f"resume={run_dir}", "epochs=3", *new_model)
    assert resumed.returncode == 0, resumed.stderr


def test_a_field_the_new_model_does_not_have_is_refused(cvlab, new_model):
    result = cvlab("train", "model=softmax", *new_model, "model.hidden_dims=[10]")
    assert result.returncode == 2
    assert "unknown key 'model.hidden_dims'" in result.stderr
    assert "valid keys in model: type, weight_scale" in result.stderr


BUFFERED = '''
"""Softmax regression on inputs centred by a running mean (a buffer: state outside params)."""
from dataclasses import dataclass

import numpy as np

from cvlab.config.train import ModelConfig
from cvlab.families.numpy import NUMPY
from cvlab.layers import affine_backward, affine_forward, softmax_loss
from cvlab.models.registry import ModelSpec, register


@dataclass
class CenteredSoftmaxConfig(ModelConfig):
    type: str = "centered_softmax"
    weight_scale: float = 1e-3


class CenteredSoftmax:
    buffers = ("running_mean",)

    def __init__(self, input_dim, num_classes, weight_scale, rng):
        self.params = {"W": weight_scale * rng.randn(input_dim, num_classes),
                       "b": np.zeros(num_classes)}
        self.running_mean = np.zeros(input_dim)

    def loss(self, X, y=None):
        X = X.reshape(len(X), -1)
        if y is not None:
            self.running_mean = 0.9 * self.running_mean + 0.1 * X.mean(axis=0)
        scores, cache = affine_forward(X - self.running_mean, self.params["W"], self.params["b"])
        if y is None:
            return scores
        loss, dscores = softmax_loss(scores, y)
        _, dW, db = affine_backward(dscores, cache)
        return loss, {"W": dW, "b": db}


def build(cfg, input_shape, num_classes, rng):
    return CenteredSoftmax(int(np.prod(input_shape)), num_classes, cfg.weight_scale, rng)


SPEC = register(ModelSpec(name="centered_softmax", family=NUMPY,
                          schema=CenteredSoftmaxConfig, build=build))
'''


@pytest.fixture
def buffered_model(plug_in):
    return [*plug_in({("models", "centered_softmax"): BUFFERED},
                     {"centered": "defaults:\n  - centered_softmax_schema\n  - _self_\n"}),
            "launcher=basic"]


def test_a_model_with_a_buffer_resumes_bit_identically(cvlab, tmp_path, buffered_model):
    from cvlab.records.reader import RunFolder

    run = ["model=centered", *TINY_DATA, "batch_size=25", "progress=false", "device.threads=1",
           *buffered_model]
    assert cvlab("train", *run, "epochs=4", cwd=tmp_path / "full").returncode == 0
    assert cvlab("train", *run, "epochs=2", cwd=tmp_path / "cut").returncode == 0
    (cut,) = (tmp_path / "cut" / "outputs" / "train").glob("*/*")
    resumed = cvlab("train", f"resume={cut}", "epochs=4", *buffered_model, cwd=tmp_path / "cut")
    assert resumed.returncode == 0, resumed.stderr
    (full,) = (tmp_path / "full" / "outputs" / "train").glob("*/*")
    last = max((tmp_path / "cut" / "outputs" / "train").glob("*/*"))
    expected, got = (RunFolder(folder).weights("model")["weights"] for folder in (full, last))
    assert set(got["buffers"]) == {"running_mean"} and got["buffers"]["running_mean"].any()
    np.testing.assert_array_equal(got["buffers"]["running_mean"],
                                  expected["buffers"]["running_mean"])
    for name in ("W", "b"):
        np.testing.assert_array_equal(got["params"][name], expected["params"][name])
