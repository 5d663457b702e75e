"""Captioning training runs: run folder records, BLEU, resume, divergence, errors, plots."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cvlab.config.typed import train_config as validate_train
from cvlab.errors import UserError
from cvlab.records.summary import read_summary

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    return tmp_path_factory.mktemp("shapes_root")


def config(shapes_root: Path, **top):
    cfg = {
        "model": {"type": "captioning", "cell_type": top.pop("cell_type", "lstm"),
                  "wordvec_dim": 16, "hidden_dim": 24, "gallery_samples": 3, "max_length": 16},
        "dataset": {"name": "shapes_captions", "root": str(shapes_root), "shapes_train": 30,
                    "shapes_val": 10, "shapes_seed": 1},
        "optimizer": {"name": "adam", "learning_rate": 1e-2},
        "device": {"name": "cpu"},
        "epochs": 2, "batch_size": 20, "progress": False, "train_eval_samples": 10,
    }
    for key, value in top.items():
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return validate_train(cfg)


def test_run_records_metrics_bleu_samples_and_checkpoint(shapes_root, tmp_path, train_in):
    run_dir = tmp_path / "run"
    assert train_in(run_dir, config(shapes_root)).status == "completed"
    summary = read_summary(run_dir)
    assert summary.status == "completed" and summary.dataset == "shapes_captions"
    assert summary.family == "captioning" and summary.wall_time_s > 0
    m = summary.metrics
    for key in ("val_bleu1", "val_bleu4", "val_course_bleu", "captions_per_s", "final_loss"):
        assert key in m
    assert 0 <= m["val_bleu4"] <= m["val_bleu1"] <= 1 and m["captions_per_s"] > 0
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert list(frame.columns[:3]) == ["iteration", "epoch", "loss"]
    steps = frame.dropna(subset=["loss"])
    per_epoch = max(frame["iteration"]) // 2
    assert list(steps["iteration"]) == list(range(1, 2 * per_epoch + 1))
    evals = frame.dropna(subset=["val_bleu4"])
    assert list(evals["epoch"]) == [1, 2]  # BLEU per epoch (bleu_every=1)
    samples = json.loads((run_dir / "samples.json").read_text())
    assert set(samples["splits"]) == {"train", "val"}
    first = samples["splits"]["val"][0]
    assert Path(first["image"]).is_file() and first["references"] and "generated" in first
    assert (run_dir / "checkpoint.npz").is_file() and (run_dir / "model.npz").is_file()

    from cvlab.plot.captioning import plot_captioning_run

    written = plot_captioning_run(run_dir, tmp_path / "plots")
    assert sorted(p.name for p in written) == ["caption_gallery.png", "caption_loss.png"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_resume_continues_where_the_checkpoint_stopped(shapes_root, tmp_path, train_in):
    first, second, straight = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    train_in(first, config(shapes_root, cell_type="rnn", epochs=1))
    train_in(second, config(shapes_root, cell_type="rnn", epochs=2, resume=str(first)))
    train_in(straight, config(shapes_root, cell_type="rnn", epochs=2))
    resumed = pd.read_csv(second / "metrics.csv").dropna(subset=["loss"])
    direct = pd.read_csv(straight / "metrics.csv").dropna(subset=["loss"])
    assert list(resumed["iteration"]) == list(direct["iteration"])  # no gap, no duplicates
    assert resumed["loss"].tolist() == pytest.approx(direct["loss"].tolist(), rel=1e-5)
    assert read_summary(second).metrics["epochs"] == 2
    assert read_summary(second).resumed_from == str(first)

    with pytest.raises(UserError, match="no checkpoint.npz"):
        train_in(tmp_path / "d", config(shapes_root, resume=str(tmp_path / "nowhere")))
    with pytest.raises(UserError, match="model.cell_type='lstm' cannot apply"):
        train_in(tmp_path / "e", config(shapes_root, cell_type="lstm", epochs=2,
                                        resume=str(first)))


def test_non_finite_loss_stops_as_diverged(shapes_root, tmp_path, train_in):
    cfg = config(shapes_root, cell_type="rnn", epochs=3,
                 optimizer={"name": "sgd", "learning_rate": 1e30})
    assert train_in(tmp_path, cfg).status == "diverged"
    summary = read_summary(tmp_path)
    assert summary.status == "diverged"
    assert summary.metrics["iterations"] < 3 * 2


def test_missing_coco_is_a_user_error(tmp_path, train_in):
    cfg = validate_train({"model": {"type": "captioning"},
                          "dataset": {"name": "coco", "root": str(tmp_path / "none")}})
    with pytest.raises(UserError, match="COCO captioning not found.*cvlab data fetch"):
        train_in(tmp_path / "a", cfg)
    with pytest.raises(UserError, match="captioning models .* train on auto, coco"):
        validate_train({"model": {"type": "captioning"}, "dataset": {"name": "cifar10"}})


def test_config_rejects_bad_values():
    from cvlab.validation import ConfigError

    with pytest.raises(ConfigError, match="model.cell_type='gru' is not allowed"):
        validate_train({"model": {"type": "captioning", "cell_type": "gru"}})
    with pytest.raises(ConfigError, match="model.hidden_dim"):
        validate_train({"model": {"type": "captioning", "hidden_dim": 0}})


@pytest.mark.slow
def test_cli_trains_the_overfit_experiment(tmp_path, cvlab):
    # The default set (4000 images): 50 captions drawn from a small set would often include two
    # different captions of one image, which no model can both predict (loss stays > 0.1).
    import os

    env = {"CVLAB_CACHE": os.environ.get("CVLAB_CACHE", str(tmp_path / "cache"))}
    args = ["train", "experiment=caption_overfit", "dataset=shapes_captions",
            "device=cpu", "device.threads=1", "val_eval_samples=10",
            f"outputs_root={tmp_path / 'outputs'}"]
    result = cvlab(*args, env=env)
    assert result.returncode == 0, result.stderr
    run_dir = next((tmp_path / "outputs" / "train").glob("*/*"))
    summary = read_summary(run_dir)
    assert summary.status == "completed"
    assert summary.metrics["final_loss"] < 0.1  # the course's overfit target
    bad = cvlab("train", "model=caption_rnn", "dataset=coco", f"dataset.root={tmp_path / 'none'}",
                f"outputs_root={tmp_path / 'o2'}", env=env)
    assert bad.returncode == 2
    assert "COCO captioning not found" in bad.stderr and "Traceback" not in bad.stderr


def test_gallery_without_local_images_shows_urls(tmp_path):
    from cvlab.plot.captioning import plot_captioning_run

    sample = {"image_index": 3, "url": "http://images.cocodataset.org/val2014/x.jpg",
              "image": None, "generated": "<START> a cat on a mat <END>",
              "references": ["<START> a cat sitting on a mat <END>"]}
    (tmp_path / "samples.json").write_text(json.dumps(
        {"dataset": "coco", "cell_type": "lstm", "splits": {"train": [sample], "val": [sample]}}))
    written = plot_captioning_run(tmp_path, tmp_path / "plots")
    assert [p.name for p in written] == ["caption_gallery.png"]  # no metrics.csv: no curve
