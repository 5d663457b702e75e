"""`cvlab eval` on every family's saved model, and `logger=tensorboard` read back with
TensorBoard's own reader."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_DATA, make_run

FAMILIES = {
    "numpy": ["model=cnn", "model.num_filters=4", "model.hidden_dim=8", *TINY_DATA, "epochs=2",
              "batch_size=25"],
    "torch": ["model=torch_cnn", "model.channel_1=4", "model.channel_2=4", *TINY_DATA, "epochs=2",
              "batch_size=25", "device=cpu"],
    "captioning": ["model=caption_lstm", "dataset=shapes_captions", "dataset.shapes_train=30",
                   "dataset.shapes_val=10", "model.hidden_dim=8", "model.wordvec_dim=8",
                   "epochs=2", "batch_size=20", "device=cpu"],
}


@pytest.fixture
def trained(cvlab, tmp_path, monkeypatch):
    """`trained(family, *extra)`: the run folder of a tiny run of that family."""
    monkeypatch.setenv("CVLAB_CACHE", str(tmp_path / "cache"))

    def train(family: str, *extra: str):
        result = cvlab("train", *FAMILIES[family], "progress=false", *extra)
        assert result.returncode == 0, result.stderr
        return max((tmp_path / "outputs" / "train").glob("*/*"))

    return train


@pytest.mark.parametrize("family", FAMILIES)
def test_eval_scores_the_saved_model_again(cvlab, trained, tmp_path, family):
    run_dir = trained(family)
    summary = json.loads((run_dir / "summary.json").read_text())
    result = cvlab("eval", f"run={run_dir}", "weights=last")
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["split"] == "val" and evaluation["weights"] == "model.npz"
    if family == "captioning":
        # the same model and images as the run's last evaluation: the same BLEU
        assert evaluation["metrics"]["val_bleu4"] == pytest.approx(summary["metrics"]["val_bleu4"])
        assert evaluation["samples"]["val"][0]["references"]
        assert "no test split" in cvlab("eval", f"run={run_dir}", "split=test").stderr
    else:
        # the last weights on the whole val split: the run's last evaluation did the same
        assert evaluation["metrics"]["val_acc"] == pytest.approx(
            summary["metrics"]["final_val_acc"])
        tested = cvlab("eval", "run=latest", "split=test")  # best weights on the test split
        assert tested.returncode == 0, tested.stderr
        best = json.loads((run_dir / "eval_test_best.json").read_text())
        assert best["weights"] == "model_best.npz" and 0 <= best["metrics"]["test_acc"] <= 1
    assert not (tmp_path / "outputs" / "eval").exists()  # eval writes into the run folder only


def test_eval_refuses_what_is_not_a_finished_run_in_one_line(cvlab, tmp_path):
    for target in (tmp_path / "missing", tmp_path):
        result = cvlab("eval", f"run={target}")
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "no run with saved weights" in cvlab("eval", "run=latest").stderr


def test_tensorboard_logger_writes_scalars_filters_and_captions(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def tags(run_dir):
        (log_dir,) = run_dir.glob("tensorboard")
        events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "tensors": 0})
        events.Reload()
        return events, events.Tags()

    events, found = tags(trained("numpy", "logger=tensorboard"))
    assert {"loss/train", "lr", "accuracy/train", "accuracy/val"} <= set(found["scalars"])
    assert found["images"] == ["filters/first_layer"]
    losses = [event.value for event in events.Scalars("loss/train")]
    assert len(losses) == 8  # 2 epochs x 4 updates, one per metrics.csv row
    events, found = tags(trained("captioning", "logger=tensorboard"))
    assert {"bleu/val_bleu4", "bleu/train_bleu1"} <= set(found["scalars"])
    assert any(tag.startswith("captions/val") for tag in found["tensors"])


def test_a_failed_eval_leaves_the_run_in_its_folder_alone(cvlab, tmp_path):
    # eval (like plot and data) works in the current folder; a mistake must not write there
    run_dir = make_run(tmp_path / "run")
    before = (run_dir / "summary.json").read_bytes()
    result = cvlab("eval", "run=/nonexistent", cwd=run_dir)
    assert result.returncode == 2
    assert (run_dir / "summary.json").read_bytes() == before


def test_tensorboard_records_each_runs_settings_and_final_metrics_as_hparams(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir = trained("numpy", "logger=tensorboard", "model.weight_scale=0.002")
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["weight_scale"].number_value == 0.002
    assert session.hparams["model_type"].string_value == "three_layer_convnet"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]).experiment
    metrics = {info.name.tag for info in experiment.metric_infos}
    assert {"final/best_val_acc", "final/final_loss"} <= metrics
    summary = json.loads((run_dir / "summary.json").read_text())
    recorded = events.Scalars("final/best_val_acc")[-1].value
    assert recorded == pytest.approx(summary["metrics"]["best_val_acc"])


def test_torch_runs_on_deterministic_algorithms_only_give_the_same_numbers(trained):
    # every operation the trainer uses has a deterministic implementation (torch raises if not)
    first = trained("torch", "device.deterministic=true", "seed=3")
    second = trained("torch", "device.deterministic=true", "seed=3")
    losses = [json.loads((run / "summary.json").read_text())["metrics"]["final_loss"]
              for run in (first, second)]
    assert losses[0] == losses[1]
