"""Solver: course semantics (sampling, checks, lr decay, best params), overfitting, divergence."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cvlab.models import FullyConnectedNet
from cvlab.records.metrics import read_metrics
from cvlab.train.core import Records
from cvlab.train.solver import Solver


def _data(num_train=50, num_val=20, seed=0, D=(3, 4, 4)):
    rng = np.random.RandomState(seed)
    return {
        "X_train": rng.randn(num_train, *D).astype(np.float32),
        "y_train": rng.randint(10, size=num_train),
        "X_val": rng.randn(num_val, *D).astype(np.float32),
        "y_val": rng.randint(10, size=num_val),
    }


def _model(seed=0, **kwargs):
    kwargs.setdefault("weight_scale", 5e-2)
    return FullyConnectedNet([40, 40], input_dim=48, rng=np.random.RandomState(seed), **kwargs)


def test_overfits_50_examples():
    model = FullyConnectedNet([100, 100], input_dim=3 * 8 * 8, weight_scale=5e-2,
                              rng=np.random.RandomState(0))
    solver = Solver(model, _data(D=(3, 8, 8)), update_rule="adam",
                    optim_config={"learning_rate": 1e-3}, num_epochs=30, batch_size=25,
                    verbose=False, rng=np.random.RandomState(0))
    solver.train()
    assert solver.train_acc_history[-1] == 1.0
    assert solver.train_acc_history[0] < 0.5


def test_iterations_checks_and_histories():
    data = _data(num_train=30)
    solver = Solver(_model(), data, batch_size=50, num_epochs=3, verbose=False,
                    rng=np.random.RandomState(0))
    assert solver.iterations_per_epoch == 1  # max(30 // 50, 1)
    solver.train()
    assert len(solver.loss_history) == 3
    # The first iteration is also the first epoch's end: one check each iteration.
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 3
    solver = Solver(_model(), _data(num_train=50), batch_size=10, num_epochs=2, verbose=False,
                    rng=np.random.RandomState(0))
    solver.train()
    assert len(solver.loss_history) == 10 and len(solver.val_acc_history) == 3


def test_minibatches_match_the_course_global_rng_sampling():
    # Course: np.random.choice(num_train, batch_size) with replacement from the global RNG.
    np.random.seed(7)
    a = Solver(_model(), _data(), batch_size=8, num_epochs=2, verbose=False)
    a.train()
    b = Solver(_model(), _data(), batch_size=8, num_epochs=2, verbose=False,
               rng=np.random.RandomState(7))
    b.train()
    assert a.loss_history == b.loss_history

    seen = []

    class Recorder:
        def __init__(self, model):
            self.model = model

        def __getattr__(self, name):
            return getattr(self.model, name)

        def loss(self, X, y=None):
            if y is not None:
                seen.append(X.shape[0])
            return self.model.loss(X, y)

    recorder = Recorder(_model())
    Solver(recorder, _data(num_train=5), batch_size=20, num_epochs=1, verbose=False,
           rng=np.random.RandomState(0)).train()
    assert seen == [20]  # 20 draws from 5 images: with replacement


def test_lr_decay_per_epoch(tmp_path):
    solver = Solver(_model(), _data(), update_rule="sgd_momentum",
                    optim_config={"learning_rate": 0.1}, lr_decay=0.5, batch_size=10,
                    num_epochs=3, verbose=False, rng=np.random.RandomState(0))
    solver.train(Records(tmp_path, checkpoint=False))
    for config in solver.optim_configs.values():
        assert config["learning_rate"] == pytest.approx(0.1 * 0.5**3)
    metrics = read_metrics(tmp_path)
    assert len(metrics) == 15
    # Each row shows the learning rate its update used: decayed after each epoch of 5.
    assert list(metrics["lr"][[0, 3, 4, 5, 9, 10, 14]]) == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert list(metrics["epoch"][[0, 4, 5, 14]]) == [0, 1, 1, 3]
    assert metrics["val_acc"].notna().sum() == 4


def test_best_params_restored():
    snapshots = []

    class Snapshotting(Solver):
        def check_accuracy(self, X, y, num_samples=None, batch_size=100):
            acc = super().check_accuracy(X, y, num_samples, batch_size)
            if X is self.X_val:
                snapshots.append((acc, {k: v.copy() for k, v in self.model.params.items()}))
            return acc

    solver = Snapshotting(_model(), _data(num_val=40), update_rule="adam",
                          optim_config={"learning_rate": 3e-2}, batch_size=10, num_epochs=6,
                          verbose=False, rng=np.random.RandomState(1))
    solver.train()
    accs = [acc for acc, _ in snapshots]
    best = int(np.argmax(accs))  # first check with the highest val accuracy
    assert len(set(accs)) > 1 and best != len(accs) - 1 or accs[-1] == max(accs)
    assert solver.best_val_acc == max(accs)
    for name, value in snapshots[best][1].items():
        np.testing.assert_array_equal(solver.model.params[name], value)


def test_unknown_arguments_and_rules():
    with pytest.raises(ValueError, match="unrecognized arguments bogus.*valid: update_rule"):
        Solver(_model(), _data(), bogus=1)
    with pytest.raises(ValueError, match="unknown update rule 'nesterov'.*sgd, sgd_momentum"):
        Solver(_model(), _data(), update_rule="nesterov")


def test_huge_weight_scale_diverges_quietly(tmp_path, capsys):
    model = FullyConnectedNet([50] * 7, input_dim=48, weight_scale=1e6,
                              rng=np.random.RandomState(0))
    solver = Solver(model, _data(), update_rule="adam", batch_size=10, num_epochs=5,
                    rng=np.random.RandomState(0), printer=lambda s: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        solver.train(Records(tmp_path, checkpoint=False))
    assert solver.diverged
    assert not np.isfinite(solver.loss_history[-1])
    assert len(solver.loss_history) < 25  # stopped early
    metrics = read_metrics(tmp_path)
    assert len(metrics) == len(solver.loss_history)
    assert "Warning" not in capsys.readouterr().err
