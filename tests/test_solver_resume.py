"""Checkpoints and resume: an interrupted run, resumed, ends exactly like an uninterrupted one."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from cvlab.models import FullyConnectedNet
from cvlab.records.files import CHECKPOINT_NAME
from cvlab.records.metrics import read_metrics
from cvlab.records.state import StateError, load_state
from cvlab.train.core import Records
from cvlab.train.signals import Interrupted
from cvlab.train.solver import Solver

pytestmark = pytest.mark.numerics  # rerun by `make test-portable`


def _data():
    rng = np.random.RandomState(0)
    return {
        "X_train": rng.randn(60, 3, 4, 4).astype(np.float32),
        "y_train": rng.randint(10, size=60),
        "X_val": rng.randn(30, 3, 4, 4).astype(np.float32),
        "y_val": rng.randint(10, size=30),
    }


class StoppingSolver(Solver):
    """Interrupted (as by Ctrl-C) before the update after `stop_at` updates."""

    stop_at: int | None = None

    def _step(self):
        if self.iteration == self.stop_at:
            raise Interrupted()
        return super()._step()


def _solver(stop_at=None):
    # Batchnorm (running statistics live outside params) and dropout (masks from numpy's
    # global RNG) make the state that a checkpoint must carry non-trivial.
    np.random.seed(3)
    model = FullyConnectedNet([20, 20], input_dim=48, normalization="batchnorm",
                              dropout_keep_ratio=0.7, weight_scale=5e-2,
                              rng=np.random.RandomState(0))
    solver = StoppingSolver(model, _data(), update_rule="adam",
                            optim_config={"learning_rate": 1e-2}, lr_decay=0.9, batch_size=10,
                            num_epochs=4, num_train_samples=20, num_val_samples=15,
                            verbose=False, rng=np.random.RandomState(1))
    solver.stop_at = stop_at
    return solver


def test_resume_reaches_the_same_params_and_histories(tmp_path):
    # Bit-exact: one process, the same BLAS kernels and thread count for both runs.
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    full_dir.mkdir()
    cut_dir.mkdir()
    full = _solver()
    full.train(Records(full_dir))

    cut = _solver(stop_at=14)  # two epochs of 6 updates, and 2 more
    with pytest.raises(Interrupted):
        cut.train(Records(cut_dir))
    saved = load_state(cut_dir / CHECKPOINT_NAME)["task"]
    assert saved["epoch"] == 2 and saved["iteration"] == 12

    np.random.seed(999)  # a fresh process would have another global RNG state
    resumed = _solver()
    resumed.resume(cut_dir)
    resumed.train(Records(cut_dir, carry_from=cut_dir))

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


def test_checkpoint_written_at_each_epoch_end_atomically(tmp_path):
    seen = []

    class Watching(StoppingSolver):
        def _step(self):
            if self.iteration and self.iteration % 6 == 0:
                seen.append(load_state(tmp_path / CHECKPOINT_NAME)["task"]["iteration"])
            return super()._step()

    np.random.seed(3)
    solver = Watching(FullyConnectedNet([5], input_dim=48, rng=np.random.RandomState(0)),
                      _data(), batch_size=10, num_epochs=4, verbose=False)
    solver.train(Records(tmp_path))
    assert seen == [6, 12, 18]
    assert load_state(tmp_path / CHECKPOINT_NAME)["task"]["iteration"] == 24
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries
    with zipfile.ZipFile(tmp_path / CHECKPOINT_NAME) as archive:  # arrays + JSON, no pickle
        assert all(name == "state.json" or name.endswith(".npy") for name in archive.namelist())


def test_resume_mismatch_is_reported(tmp_path):
    _solver().train(Records(tmp_path))
    other = Solver(FullyConnectedNet([5], input_dim=48), _data(), verbose=False)
    with pytest.raises(ValueError, match="are not the model's"):
        other.resume(tmp_path)
    with pytest.raises(StateError, match="does not exist"):
        other.resume(tmp_path / "missing")
