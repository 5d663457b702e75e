"""Checkpoints and resume: an interrupted run, resumed, ends exactly like an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest

from cvlab.errors import UserError
from cvlab.models import FullyConnectedNet
from cvlab.runs import MetricsLogger, read_metrics
from cvlab.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from cvlab.train.solver import METRIC_COLUMNS, Solver


class Interrupt(Exception):
    pass


def _data():
    rng = np.random.RandomState(0)
    return {
        "X_train": rng.randn(60, 3, 4, 4).astype(np.float32),
        "y_train": rng.randint(10, size=60),
        "X_val": rng.randn(30, 3, 4, 4).astype(np.float32),
        "y_val": rng.randint(10, size=30),
    }


def _solver(run_dir, logger=None, **kwargs):
    # Batchnorm (running statistics live outside params) and dropout (masks from numpy's
    # global RNG) make the state that a checkpoint must carry non-trivial.
    np.random.seed(3)
    model = FullyConnectedNet([20, 20], input_dim=48, normalization="batchnorm",
                              dropout_keep_ratio=0.7, weight_scale=5e-2,
                              rng=np.random.RandomState(0))
    return Solver(model, _data(), update_rule="adam", optim_config={"learning_rate": 1e-2},
                  lr_decay=0.9, batch_size=10, num_epochs=4, num_train_samples=20,
                  num_val_samples=15, verbose=False, rng=np.random.RandomState(1),
                  checkpoint_dir=run_dir, logger=logger, **kwargs)


def _interrupt_after_epoch(epoch):
    def hook(solver):
        if solver.epoch == epoch:
            raise Interrupt

    return hook


def test_resume_reaches_the_same_params_and_histories(tmp_path):
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    full_logger = MetricsLogger(full_dir, METRIC_COLUMNS)
    full = _solver(full_dir, full_logger)
    full.train()
    full_logger.close()

    cut_logger = MetricsLogger(cut_dir, METRIC_COLUMNS)
    cut = _solver(cut_dir, cut_logger, on_checkpoint=_interrupt_after_epoch(2))
    with pytest.raises(Interrupt):
        cut.train()
    cut_logger.close()
    saved = load_checkpoint(cut_dir)
    assert saved["epoch"] == 2 and saved["iteration"] == 12

    np.random.seed(999)  # a fresh process would have another global RNG state
    resumed = _solver(cut_dir)
    resumed.resume(cut_dir / CHECKPOINT_NAME)
    resumed.logger = MetricsLogger(cut_dir, METRIC_COLUMNS,
                                   truncate_after_iteration=resumed.iteration)
    resumed.train()
    resumed.logger.close()

    assert resumed.loss_history == full.loss_history
    assert resumed.train_acc_history == full.train_acc_history
    assert resumed.val_acc_history == full.val_acc_history
    assert resumed.best_val_acc == full.best_val_acc
    for name, value in full.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], value)
    for a, b in zip(resumed.model.bn_params, full.model.bn_params):
        np.testing.assert_array_equal(a["running_mean"], b["running_mean"])
        np.testing.assert_array_equal(a["running_var"], b["running_var"])
    for name, config in full.optim_configs.items():
        assert resumed.optim_configs[name]["t"] == config["t"]
        assert resumed.optim_configs[name]["learning_rate"] == config["learning_rate"]
    a, b = read_metrics(cut_dir), read_metrics(full_dir)
    columns = ["iteration", "epoch", "loss", "train_acc", "val_acc", "lr"]
    assert a[columns].equals(b[columns])


def test_checkpoint_written_at_each_epoch_end(tmp_path):
    epochs = []

    def hook(solver):
        epochs.append((solver.epoch, load_checkpoint(tmp_path)["iteration"]))

    _solver(tmp_path, on_checkpoint=hook).train()
    assert epochs == [(1, 6), (2, 12), (3, 18), (4, 24)]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_resume_mismatch_is_reported(tmp_path):
    _solver(tmp_path).train()
    other = Solver(FullyConnectedNet([5], input_dim=48), _data(), verbose=False)
    with pytest.raises(ValueError, match="do not match"):
        other.resume(tmp_path)
    with pytest.raises(UserError, match="no checkpoint"):
        other.resume(tmp_path / "missing")
