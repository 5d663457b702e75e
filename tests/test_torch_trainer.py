"""The torch trainer on tiny synthetic data (CPU): learning, resume, test split, divergence."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from cvlab.config.train import OptimizerConfig
from cvlab.config.typed import train_config as validate_train
from cvlab.errors import UserError
from cvlab.models.nets.torch_nets import build_three_layer_convnet
from cvlab.run.train import preflight, train
from cvlab.train import torch_task
from cvlab.train.core import LoopOptions, Records, run_loop
from cvlab.train.torch_schedules import lr_factor
from cvlab.train.torch_task import DeviceData, Recipe, TorchRunTask, cpu_has_native_bf16

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def stripes(num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class (0..3) is the orientation/colour of a noisy stripe pattern."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, num)
    grid = np.arange(8)
    patterns = np.stack([
        np.broadcast_to((grid[:, None] // 2) % 2, (8, 8)),
        np.broadcast_to((grid[None, :] // 2) % 2, (8, 8)),
        ((grid[:, None] + grid[None, :]) // 2) % 2,
        ((grid[:, None] - grid[None, :]) // 2) % 2,
    ]).astype(np.float32)
    images = patterns[labels][:, None] * 150 + rng.normal(60, 40, (num, 3, 8, 8))
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.int64)


def tiny_data(num_train: int = 256) -> DeviceData:
    X, y = stripes(num_train + 200, 0)
    splits = SimpleNamespace(X_train=X[:num_train], y_train=y[:num_train],
                             X_val=X[num_train:num_train + 100],
                             y_val=y[num_train:num_train + 100], X_test=X[-100:], y_test=y[-100:])
    return DeviceData.from_splits(splits, torch.device("cpu"))


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_three_layer_convnet("module", (3, 8, 8), channel_1=6, channel_2=4,
                                     num_classes=4)


def settings(**overrides) -> Recipe:
    base = dict(optimizer=OptimizerConfig(name="sgd_momentum", learning_rate=0.02, nesterov=True),
                epochs=3, batch_size=32, check_every=1000, crop_pad=1, flip="random",
                train_eval_samples=100)
    base.update(overrides)
    return Recipe(**base)


def fit(model, data, recipe, run_dir, resume_from=None):
    """Train through the one loop; (task, loop result)."""
    task = TorchRunTask(model, data, recipe, torch.device("cpu"))
    resumed = None
    if resume_from is not None:
        from cvlab.records.state import load_state

        tree = load_state(resume_from / "checkpoint.npz")
        task.load_state(tree["task"])
        resumed = tree["loop"]
    result = run_loop(task, LoopOptions(verbose=False),
                      Records(run_dir, carry_from=resume_from), resumed)
    return task, result


def test_training_rises_well_above_chance(tmp_path):
    task, result = fit(tiny_model(), tiny_data(), settings(), tmp_path)
    assert result.status == "completed"
    assert result.last["val_acc"] >= 0.7  # chance is 0.25
    metrics = (tmp_path / "metrics.csv").read_text().splitlines()
    assert metrics[0] == "iteration,epoch,loss,train_acc,val_acc,lr,elapsed_s"
    assert len(metrics) == 1 + 3 * 8  # one row per iteration; checks join the epoch's last


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_cpu_only_where_the_cpu_has_it(monkeypatch, native):
    monkeypatch.setattr(torch_task, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert torch_task.resolve_amp("bf16", cpu) == ("bf16" if native else "none")
    assert torch_task.resolve_amp("fp16", cpu) == "none"
    assert torch_task.resolve_amp("none", cpu) == "none"
    assert torch_task.resolve_amp("fp16", torch.device("cuda")) == "fp16"
    with torch_task._autocast(cpu, "bf16"):
        product = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
    assert product.dtype == torch.bfloat16


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_bf16_autocast_on_cpu_still_learns(tmp_path):
    _, result = fit(tiny_model(), tiny_data(), settings(amp="bf16"), tmp_path)
    assert result.status == "completed" and result.last["val_acc"] >= 0.7


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    # Bit-exact: one process, the same kernels and thread count for both runs.
    data = tiny_data()
    whole, first, second = tmp_path / "whole", tmp_path / "first", tmp_path / "second"
    for folder in (whole, first, second):
        folder.mkdir()
    full = tiny_model()
    fit(full, data, settings(epochs=3), whole)
    fit(tiny_model(), data, settings(epochs=2), first)
    resumed = tiny_model(seed=99)  # different initial weights: all must come from the checkpoint
    task, _ = fit(resumed, data, settings(epochs=3), second, resume_from=first)
    assert task.epoch == 3
    for key, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)

    def losses(folder):
        frame = pd.read_csv(folder / "metrics.csv")
        return frame[["iteration", "epoch", "loss", "val_acc"]].fillna(-1).values.tolist()

    assert losses(second) == losses(whole)  # the earlier rows carried over, the rest identical


class Untouchable:
    """Stands in for the test split: any use fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was used ({name})")

    def __len__(self):
        raise AssertionError("the test split was used (len)")

    def __getitem__(self, item):
        raise AssertionError("the test split was used (indexing)")


def test_test_split_untouched_unless_asked(tmp_path):
    data = tiny_data()
    real_X, real_y = data.X_test, data.y_test
    data.X_test, data.y_test = Untouchable(), Untouchable()
    task, _ = fit(tiny_model(), data, settings(epochs=1), tmp_path)
    data.X_test, data.y_test = real_X, real_y
    assert 0.0 <= task.evaluate_split("test")["test_acc"] <= 1.0


def test_non_finite_loss_stops_with_status_diverged(tmp_path):
    s = settings(optimizer=OptimizerConfig(name="sgd", learning_rate=1e30), epochs=2)
    task, result = fit(tiny_model(), tiny_data(), s, tmp_path)
    assert result.status == "diverged"
    assert task.epoch <= 1


def test_warmup_linear_schedule_shape():
    opt = OptimizerConfig(schedule="warmup_linear", warmup_frac=0.2, warmup_start=0.2)
    factors = [lr_factor(opt, step, 100, 10) for step in range(101)]
    assert factors[0] == pytest.approx(0.2) and factors[20] == pytest.approx(1.0)
    assert factors[100] == pytest.approx(0.0) and factors[60] == pytest.approx(0.5)
    # the challenge's shape: 0.2 -> 1 at 23 % of the steps -> 0.07 at the end
    triangle = OptimizerConfig(schedule="warmup_linear", warmup_frac=0.23, warmup_start=0.2,
                               final_factor=0.07)
    factors = [lr_factor(triangle, step, 200, 10) for step in range(201)]
    assert factors[46] == pytest.approx(1.0) and factors[200] == pytest.approx(0.07)
    assert factors[123] == pytest.approx(1.0 - 0.93 * 77 / 154)
    cosine = OptimizerConfig(schedule="onecycle", warmup_frac=0.5, final_factor=0.1)
    assert [lr_factor(cosine, s, 100, 10) for s in (50, 75, 100)] == pytest.approx([1.0, 0.55, 0.1])
    step = OptimizerConfig(schedule="step", lr_decay=0.5, step_epochs=2)
    assert [lr_factor(step, s, 100, 10) for s in (0, 19, 20, 45)] == [1.0, 1.0, 0.5, 0.25]


def train_cfg(**model):
    return validate_train({
        "model": {"type": "torch_cnn", "api": "module", "channel_1": 4, "channel_2": 4, **model},
        "dataset": {"name": "synthetic", "synthetic_train": 300, "synthetic_test": 50,
                    "num_train": 200, "num_val": 50, "num_test": 50},
        "optimizer": {"name": "sgd_momentum", "learning_rate": 0.01, "nesterov": True},
        "device": {"name": "cpu"}, "epochs": 1, "batch_size": 50, "progress": False,
    })


def test_run_writes_summary_and_refuses_a_checkpoint_of_another_model(tmp_path):
    first = tmp_path / "first"
    first.mkdir()
    cfg = train_cfg()
    assert train(cfg, first).status == "completed"
    (first / "config.yaml").write_text(json.dumps(dataclasses.asdict(cfg)))  # as the CLI does
    summary = json.loads((first / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["dataset"] == "synthetic"
    assert summary["family"] == "torch" and summary["model_type"] == "torch_cnn"
    assert {"final_val_acc", "best_val_acc", "images_per_s"} <= set(summary["metrics"])
    assert "test_acc" not in summary["metrics"]
    other = train_cfg(channel_1=8)
    other.resume = str(first)
    second = tmp_path / "second"
    second.mkdir()
    with pytest.raises(UserError) as err:
        preflight(other)
    message = str(err.value)
    assert "channel_1=8" in message and "4" in message and "\n" not in message


def test_device_cuda_without_a_gpu_is_one_line_and_exit_2(cvlab):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    result = cvlab("train", "model=torch_cnn", "device=cuda", "dataset=synthetic",
                   "dataset.synthetic_train=100", "dataset.num_train=50", "dataset.num_val=10",
                   "batch_size=50", "outputs_root=outputs")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "device=cuda" in result.stderr
