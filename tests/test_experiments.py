"""Every numpy experiment and sweep config end to end on tiny data, then `cvlab plot` on it;
resume through the CLI; the slow real-CIFAR-10 checks of the course's headline results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_DATA, requires_cifar
from PIL import Image

from cvlab.records.reader import RunFolder

CNN_TINY = ["model.num_filters=4", "model.hidden_dim=10", "dataset.num_train=60"]


def _run_folders(tmp_path: Path) -> list[Path]:
    return sorted(p.parent for p in (tmp_path / "outputs").rglob("summary.json"))


def _plot(cvlab, folder: Path, expected: set[str]) -> None:
    result = cvlab("plot", f"run={folder}")
    assert result.returncode == 0, result.stderr
    pngs = {p.name for p in (folder / "plots").glob("*.png")}
    assert expected <= pngs, pngs
    assert (folder / "report.md").is_file()


def test_conv_demo_builtin_images(cvlab, tmp_path):
    result = cvlab("train", "experiment=conv_demo", "model.image_size=48")
    assert result.returncode == 0, result.stderr
    (run,) = _run_folders(tmp_path)
    inputs = np.load(run / "conv_demo_inputs.npy")
    outputs = np.load(run / "conv_demo_outputs.npy")
    assert inputs.shape == (2, 3, 48, 48) and outputs.shape == (2, 2, 48, 48)
    # Grayscale filter at an interior pixel: 0.3 R + 0.6 G + 0.1 B; edge filter: Sobel on
    # the blue channel + 128 (hand computation).
    x = inputs[1]
    np.testing.assert_allclose(outputs[1, 0, 10, 20], 0.3 * x[0, 10, 20] + 0.6 * x[1, 10, 20]
                               + 0.1 * x[2, 10, 20])
    blue = x[2, 9:12, 19:22]
    sobel = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]])
    np.testing.assert_allclose(outputs[1, 1, 10, 20], np.sum(blue * sobel) + 128)
    assert len(list((run / "conv_demo").glob("*.png"))) == 6
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    _plot(cvlab, run, {"conv_demo.png"})


def test_conv_demo_user_images_and_bad_path(cvlab, tmp_path):
    for name, colour in (("red.png", (255, 0, 0)), ("wide.jpg", (0, 0, 200))):
        Image.new("RGB", (40, 30) if name == "wide.jpg" else (30, 30), colour).save(
            tmp_path / name)
    result = cvlab("train", "experiment=conv_demo", "model.image_size=16",
                   f"model.images=[{tmp_path / 'red.png'},{tmp_path / 'wide.jpg'}]")
    assert result.returncode == 0, result.stderr
    (run,) = _run_folders(tmp_path)
    inputs = np.load(run / "conv_demo_inputs.npy")
    assert inputs.shape == (2, 3, 16, 16)
    assert inputs[0, 0].min() == 255 and inputs[1, 2].max() == 200
    bad = cvlab("train", "experiment=conv_demo", "model.images=[nope.png]")
    assert bad.returncode == 2
    assert "nope.png is not a file" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
@pytest.mark.numerics
def test_resume_through_the_cli_matches_an_uninterrupted_run(cvlab, tmp_path):
    args = ["model=ln_fc", "model.hidden_dims=[20,20]", *TINY_DATA, "batch_size=20",
            "seed=3", "launcher=basic"]
    full = cvlab("train", *args, "epochs=4", cwd=tmp_path / "full")
    first = cvlab("train", *args, "epochs=2", cwd=tmp_path / "part")
    assert full.returncode == first.returncode == 0, full.stderr + first.stderr
    (full_dir,) = _run_folders(tmp_path / "full")
    (first_dir,) = _run_folders(tmp_path / "part")
    resumed = cvlab("train", *args, "epochs=4", f"resume={first_dir}", cwd=tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr
    (resumed_dir,) = _run_folders(tmp_path / "resumed")
    a = RunFolder(full_dir).weights("model")["weights"]["params"]
    b = RunFolder(resumed_dir).weights("model")["weights"]["params"]
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])

    def rows(folder):
        return [line.rsplit(",", 1)[0] for line in
                (folder / "metrics.csv").read_text().splitlines()]

    assert rows(full_dir) == rows(resumed_dir)
    summary = json.loads((resumed_dir / "summary.json").read_text())
    assert summary["resumed_from"] == str(first_dir)
    bad = cvlab("train", *args, "model.hidden_dims=[5]",
                f"resume={first_dir}", cwd=tmp_path / "bad")
    assert bad.returncode == 2 and "cannot apply to a resumed run" in bad.stderr


@pytest.mark.slow
@pytest.mark.numerics
def test_seeded_runs_are_reproducible(cvlab, tmp_path):
    args = ["model=dropout_fc", "model.hidden_dims=[30]", *TINY_DATA, "epochs=2",
            "batch_size=20", "seed=11", "launcher=basic"]
    for name in ("a", "b"):
        assert cvlab("train", *args, cwd=tmp_path / name).returncode == 0
    (a,) = _run_folders(tmp_path / "a")
    (b,) = _run_folders(tmp_path / "b")
    strip = [line.rsplit(",", 1)[0] for line in (a / "metrics.csv").read_text().splitlines()]
    assert strip == [line.rsplit(",", 1)[0]
                     for line in (b / "metrics.csv").read_text().splitlines()]


@pytest.mark.slow
def test_evaluate_test_only_on_request(cvlab, tmp_path):
    args = ["model.hidden_dims=[10]", *TINY_DATA, "epochs=1", "launcher=basic"]
    assert cvlab("train", *args, cwd=tmp_path / "no").returncode == 0
    assert cvlab("train", *args, "evaluate_test=true", cwd=tmp_path / "yes").returncode == 0
    (no,) = _run_folders(tmp_path / "no")
    (yes,) = _run_folders(tmp_path / "yes")
    assert "test_acc" not in json.loads((no / "summary.json").read_text())["metrics"]
    assert 0 <= json.loads((yes / "summary.json").read_text())["metrics"]["test_acc"] <= 1


def test_unavailable_optimizer_is_a_user_error(cvlab, tmp_path):
    result = cvlab("train", "optimizer.name=adamw", *TINY_DATA, "epochs=1")
    assert result.returncode == 2
    assert "adamw is for PyTorch models" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, jobs, figure",
    [
        (["experiment=bn_deep", "model.hidden_dims=[20,20]"], 2, "curves.png"),
        (["model=bn_fc", "sweep=batch_size", "model.hidden_dims=[20,20]"], 4, "batch_size.png"),
        (["model=ln_fc", "sweep=batch_size", "model.hidden_dims=[20,20]"], 4, "batch_size.png"),
        (["sweep=dropout", "model.hidden_dims=[30]"], 2, "dropout.png"),
        (["model=bn_fc", "sweep=weight_scale", "model.hidden_dims=[20,20]",
          "hydra.sweeper.params={model.weight_scale:'1e-3,1e-1',baseline:'false,true'}"], 4,
         "weight_scale.png"),
    ],
    ids=["bn_deep", "batch_size_bn", "batch_size_ln", "dropout", "weight_scale"],
)
def test_sweep_configs_end_to_end_and_plot(cvlab, tmp_path, args, jobs, figure):
    result = cvlab("train", *args, *TINY_DATA, "epochs=1", "launcher=basic")
    assert result.returncode == 0, result.stderr
    folder = next((tmp_path / "outputs").rglob("sweep_summary.json")).parent
    rows = json.loads((folder / "sweep_summary.json").read_text())
    assert len(rows) == jobs and all(r["status"] == "completed" for r in rows)
    if "sweep=batch_size" in args:
        points = sorted((r["batch_size"], r["normalization"]) for r in rows)
        norm = "batchnorm" if "model=bn_fc" in args else "layernorm"
        assert points == sorted([(5, "none"), (5, norm), (10, norm), (50, norm)])
    if "sweep=dropout" in args:
        assert sorted(r["dropout_keep_ratio"] for r in rows) == [0.25, 1.0]
    _plot(cvlab, folder, {figure})


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["cnn_overfit", "cnn_one_epoch"])
def test_cnn_experiments_end_to_end_and_plot(cvlab, tmp_path, experiment):
    result = cvlab("train", f"experiment={experiment}", *TINY_DATA, *CNN_TINY,
                   "epochs=1")
    assert result.returncode == 0, result.stderr
    (run,) = _run_folders(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["experiment"] == experiment and summary["family"] == "numpy"
    assert RunFolder(run).weights("model")["weights"]["params"]["W1"].shape == (4, 3, 7, 7)
    _plot(cvlab, run, {"curves.png", "filters.png"})


@pytest.mark.slow
@requires_cifar
def test_bn_deep_batchnorm_ahead_of_baseline_on_cifar10(cvlab, tmp_path):
    result = cvlab("train", "experiment=bn_deep", "dataset=cifar10", "epochs=4")
    assert result.returncode == 0, result.stderr
    folder = next((tmp_path / "outputs").rglob("sweep_summary.json")).parent
    rows = {r["normalization"]: r for r in json.loads((folder / "sweep_summary.json").read_text())}
    assert rows["batchnorm"]["final_train_acc"] > rows["none"]["final_train_acc"]


@pytest.mark.slow
@requires_cifar
def test_cnn_overfit_on_cifar10(cvlab, tmp_path):
    # The course's setup; fewer validation images keep the per-epoch checks short.
    result = cvlab("train", "experiment=cnn_overfit", "dataset=cifar10",
                   "dataset.num_val=200")
    assert result.returncode == 0, result.stderr
    (run,) = _run_folders(tmp_path)
    metrics = json.loads((run / "summary.json").read_text())["metrics"]
    assert metrics["best_train_acc"] >= 0.9


@pytest.mark.slow
def test_bench_train_quick(cvlab, tmp_path):
    result = cvlab("bench", "train", "quick=true", "repeats=2", "warmup=1")
    assert result.returncode == 0, result.stderr
    (run,) = _run_folders(tmp_path)
    lines = (run / "bench_train.csv").read_text().splitlines()
    assert lines[0].startswith("model,framework,batch_size,dtype,step_ms,images_per_s")
    assert len(lines) >= 3 and "pytorch cpu" in lines[2]
    metrics = json.loads((run / "summary.json").read_text())["metrics"]
    assert metrics["numpy_images_per_s"] > 0 and metrics["pytorch_images_per_s"] > 0


def test_a_run_that_starts_astronomically_high_is_diverged(cvlab, tmp_path):
    """model=fc model.weight_scale=1e9: the first loss is far above 1000 x ln 10, so the run
    stops at its first update as diverged (exit 0: a diverged run is a result)."""
    result = cvlab("train", "model=fc", "model.weight_scale=1e9", *TINY_DATA, "epochs=2",
                   "batch_size=50")
    assert result.returncode == 0, result.stderr
    assert "1000 x an untrained model's loss" in result.stdout + result.stderr
    (run,) = _run_folders(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert summary["metrics"]["iterations"] == 1 and summary["metrics"]["final_loss"] > 2303


def test_a_resumed_run_goes_under_the_outputs_root_of_the_run_it_continues(cvlab, tmp_path):
    """Started with outputs_root=runs (relative) in one folder and resumed from another: the
    new run goes next to the one it continues; an outputs_root on the command line wins; a
    run started with the default root resumes into the working folder's outputs/."""
    args = ["model.hidden_dims=[10]", *TINY_DATA, "launcher=basic", "progress=false"]
    first = cvlab("train", *args, "epochs=1", "outputs_root=runs", cwd=tmp_path / "a")
    assert first.returncode == 0, first.stderr
    (started,) = (tmp_path / "a" / "runs" / "train").glob("*/*")
    resumed = cvlab("train", f"resume={started}", "epochs=2", cwd=tmp_path / "b")
    assert resumed.returncode == 0, resumed.stderr
    assert len(list((tmp_path / "a" / "runs" / "train").glob("*/*"))) == 2
    assert not (tmp_path / "b" / "outputs").exists()
    again = cvlab("train", f"resume={started}", "epochs=2", "outputs_root=elsewhere",
                  cwd=tmp_path / "b")
    assert again.returncode == 0, again.stderr
    (moved,) = (tmp_path / "b" / "elsewhere" / "train").glob("*/*")
    assert json.loads((moved / "summary.json").read_text())["resumed_from"] == str(started)

    plain = cvlab("train", *args, "epochs=1", cwd=tmp_path / "c")
    (default_run,) = _run_folders(tmp_path / "c")
    assert plain.returncode == 0 and cvlab("train", f"resume={default_run}", "epochs=2",
                                           cwd=tmp_path / "d").returncode == 0
    assert len(_run_folders(tmp_path / "d")) == 1


def test_the_outputs_root_of_a_run_folder_is_read_from_where_it_is():
    from cvlab.cli.resume import outputs_root_of

    assert outputs_root_of(Path("/x/runs/train/2026-12-04/05-58-18-810550")) == Path("/x/runs")
    assert outputs_root_of(Path("/x/runs/train/multirun/2026-12-04/05-58-18/7")) == \
        Path("/x/runs")
    assert outputs_root_of(Path("/x/my-run")) is None  # hydra.run.dir=/x/my-run
    assert outputs_root_of(Path("/x/runs/train/multirun/2026-12-04/05-58-18")) is None
