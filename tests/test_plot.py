"""cvlab.plot on synthetic run and sweep folders written like the trainers write them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import make_run, make_sweep, model_config

from cvlab.errors import UserError
from cvlab.plot import plot_folder, resolve_target
from cvlab.plot.detect import describe_target
from cvlab.plot.images import filter_grid
from cvlab.plot.records import accuracy_series, load_run
from cvlab.plot.sweeps import weight_scale_series
from cvlab.records.state import save_weights
from cvlab.records.summary import write_summary

SCALES = [1e-4, 1e-2, 1.0]


def weight_scale_jobs() -> list[dict]:
    jobs = []
    for baseline in (False, True):
        for scale in SCALES:
            job = {"model": model_config(weight_scale=scale), "baseline": baseline,
                   "final_acc": 0.3 if baseline else 0.7}
            if baseline and scale == 1.0:
                job.update(losses=[2.3, 50.0, math.inf], status="diverged")
            jobs.append(job)
    return jobs


def assert_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.is_file() and path.suffix == ".png"
    image = imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0  # not a blank canvas


def test_a_run_reads_its_numbers_from_its_summary(tmp_path):
    losses = list(np.linspace(3.0, 1.0, 150))
    run = load_run(make_run(tmp_path / "run", epochs=3, iterations_per_epoch=50, losses=losses))
    assert run.metric("final_loss_mean") == pytest.approx(np.mean(losses[-75:]))
    assert run.metric("best_train_acc") == pytest.approx(0.6)
    assert run.metric("best_val_acc") == pytest.approx(0.48)
    assert run.family == "numpy" and run.model_type == "fc_net"
    diverged = load_run(make_run(tmp_path / "bad", losses=[2.0, math.nan]))
    assert diverged.metric("final_loss_mean") == math.inf


@pytest.mark.parametrize("style", ["numpy", "torch"])
def test_end_of_epoch_checks_sit_at_whole_epochs(tmp_path, style):
    """numpy Solver: iteration t+1 logged under the epoch count after it, checks on the same
    row; torch trainer: loss rows under the epoch index, a check row after each epoch."""
    per_epoch, lines = 4, ["iteration,epoch,loss,train_acc,val_acc"]
    for t in range(3 * per_epoch):
        if style == "numpy":
            epoch = (t + 1) // per_epoch
            check = t == 0 or (t + 1) % per_epoch == 0
            accuracy = f"{epoch / 10},{epoch / 10}" if check else ","
            lines.append(f"{t + 1},{epoch},2.0,{accuracy}")
        else:
            lines.append(f"{t + 1},{t // per_epoch},2.0,,")
            if (t + 1) % per_epoch == 0:
                lines.append(f"{t + 1},{t // per_epoch},,0.5,0.5")
    (tmp_path / "metrics.csv").write_text("\n".join(lines) + "\n")
    epochs, _ = accuracy_series(load_run(tmp_path).metrics, "val_acc")
    np.testing.assert_allclose(epochs, [0, 1, 2, 3] if style == "numpy" else [1, 2, 3])


def test_weight_scale_sweep_figure_report_and_table(tmp_path):
    sweep = make_sweep(tmp_path / "sweep", weight_scale_jobs())
    result = plot_folder(sweep)
    assert result.target.kind == "weight_scale"
    names = sorted(p.name for p in result.figures)
    assert names == ["curves.png", "weight_scale.png"]
    for path in result.figures:
        assert_png(path)
        assert path.parent == sweep / "plots"
    series = weight_scale_series(result.target)
    assert list(series) == ["batchnorm", "baseline"]
    assert [r.get("model.weight_scale") for r in series["baseline"]] == SCALES
    diverged = series["baseline"][-1]
    assert diverged.status == "diverged" and diverged.metric("final_loss_mean") == math.inf
    report = (sweep / "report.md").read_text()
    assert "![weight_scale](plots/weight_scale.png)" in report
    assert "diverged" in report
    assert ("batchnorm: best val acc 0.560 at weight scale 1.00e-04; of 3 scales, 0 diverged"
            in report)
    assert "baseline: best val acc 0.240 at weight scale 1.00e-04; of 3 scales, 1 diverged" \
        in report
    assert "x the typical starting loss" in report  # the threshold is explained
    assert len(result.table.rows) == 6
    assert result.table.columns[:4] == ["job", "model", "weight scale", "status"]
    assert result.table.rows[5][1:6] == ["baseline", "1.00e+00", "diverged", "0.3", "0.24"]


def test_batch_size_sweep_lines_per_batch_size_plus_baseline(tmp_path):
    jobs = [{"batch_size": 5, "baseline": True}] + [
        {"batch_size": size, "baseline": False} for size in (5, 10, 50)]
    result = plot_folder(make_sweep(tmp_path / "bs", jobs))
    assert result.target.kind == "batch_size"
    assert sorted(p.name for p in result.figures) == ["batch_size.png", "curves.png"]
    labels = [run.label for run in result.target.runs]
    assert labels == ["baseline, batch 5", "batchnorm, batch 5", "batchnorm, batch 10",
                      "batchnorm, batch 50"]
    for path in result.figures:
        assert_png(path)


def test_dropout_sweep(tmp_path):
    jobs = [{"model": model_config(normalization="none", hidden_dims=[500],
                                   dropout_keep_ratio=keep)} for keep in (1.0, 0.25)]
    result = plot_folder(make_sweep(tmp_path / "dropout", jobs))
    assert result.target.kind == "dropout"
    assert "dropout.png" in [p.name for p in result.figures]
    assert [run.label for run in result.target.runs] == ["keep 1.00", "keep 0.25"]


def test_baseline_vs_batchnorm_curves_from_a_two_job_sweep(tmp_path):
    jobs = [{"baseline": False}, {"baseline": True}]
    result = plot_folder(make_sweep(tmp_path / "bn", jobs))
    assert result.target.kind == "comparison"
    assert [p.name for p in result.figures] == ["curves.png"]
    assert [run.label for run in result.target.runs] == ["batchnorm", "baseline"]


def test_single_cnn_run_draws_curves_and_the_filter_grid(tmp_path):
    run_dir = make_run(tmp_path / "cnn", model={"type": "three_layer_convnet",
                                                "num_filters": 32, "filter_size": 7})
    rng = np.random.default_rng(0)
    # as a numpy run leaves it: model.npz (W1, b1, ...)
    save_weights(run_dir / "model.npz", "numpy", "three_layer_convnet",
                 {"W1": rng.normal(size=(32, 3, 7, 7)), "b1": np.zeros(32),
                  "W2": rng.normal(size=(10, 10))})
    result = plot_folder(run_dir)
    assert result.target.kind == "run" and not result.target.is_set
    assert [p.name for p in result.figures] == ["curves.png", "filters.png"]
    for path in result.figures:
        assert_png(path)
    table = dict(result.table.rows)
    assert table["status"] == "completed" and table["best train acc"] == "0.6"


def test_filter_grid_scales_each_filter_and_keeps_its_place():
    weights = np.arange(5 * 3 * 2 * 2, dtype=float).reshape(5, 3, 2, 2)
    weights[4] = 7.0  # a constant filter
    grid = filter_grid(weights, padding=1)
    assert grid.shape == (3 * 2 + 2, 3 * 2 + 2, 3)  # 5 filters -> 3x3 grid of 2x2 tiles
    first = grid[0:2, 0:2]
    assert first.min() == 0 and first.max() == 255
    # filter 0, channel 0, pixel (0, 1) = 1 of range [0, 11] -> 255 / 11
    assert first[0, 1, 0] == pytest.approx(255 / 11)
    second = grid[0:2, 3:5]  # filter 1 sits right of filter 0, after one padding column
    assert second.max() == 255 and np.all(grid[:, 2] == 0)
    assert np.all(grid[3:5, 3:5] == 0)  # the constant filter 4 (row 1, col 1) is flat


def test_torch_run_with_a_schedule_gets_a_learning_rate_panel(tmp_path):
    run_dir = make_run(tmp_path / "torch", model={"type": "torch_fc", "api": "module"},
                       lr_decay=0.5)
    result = plot_folder(run_dir)
    assert [p.name for p in result.figures] == ["curves.png"]
    assert_png(result.figures[0])
    wide = imread_shape(result.figures[0])
    flat = imread_shape(plot_folder(make_run(tmp_path / "flat", model={"type": "torch_fc"}))
                        .figures[0])
    assert wide[1] > 1.3 * flat[1]  # three panels (loss, accuracy, lr) instead of two


def imread_shape(path: Path) -> tuple[int, ...]:
    from matplotlib.image import imread

    return imread(path).shape


def test_torch_cnn_filters_from_its_weights(tmp_path):
    torch = pytest.importorskip("torch")
    run_dir = make_run(tmp_path / "torch", model={"type": "torch_cnn", "api": "sequential"})
    weight = torch.randn(16, 3, 5, 5)
    save_weights(run_dir / "model.npz", "torch", "torch_cnn",
                 {"0.weight": weight, "0.bias": torch.zeros(16)})
    result = plot_folder(run_dir)
    assert [p.name for p in result.figures] == ["curves.png", "filters.png"]
    from cvlab.plot.records import first_layer_filters

    np.testing.assert_allclose(first_layer_filters(load_run(run_dir)), weight.numpy())


def test_conv_demo_run_collects_the_saved_images(tmp_path):
    run_dir = tmp_path / "demo"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"experiment": "conv_demo",
                                                         "model": {"type": "conv_demo"}}))
    write_summary(run_dir, status="completed", family="demo", model_type="conv_demo")
    np.save(run_dir / "input_0.npy", np.zeros((32, 32, 3), dtype=np.uint8) + 100)
    np.save(run_dir / "gray_0.npy", np.linspace(0, 1, 32 * 32).reshape(32, 32))
    result = plot_folder(run_dir)
    assert [p.name for p in result.figures] == ["conv_demo.png"]
    assert_png(result.figures[0])


def test_conv_demo_figure_from_the_saved_arrays(tmp_path):
    run_dir = tmp_path / "demo"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"experiment": "conv_demo"}))
    write_summary(run_dir, status="completed", family="demo", model_type="conv_demo")
    rng = np.random.default_rng(0)
    np.save(run_dir / "conv_demo_inputs.npy", rng.uniform(0, 255, size=(2, 3, 16, 16)))
    np.save(run_dir / "conv_demo_outputs.npy", rng.normal(size=(2, 2, 16, 16)))
    (run_dir / "conv_demo").mkdir()  # the PNG copies are not drawn twice
    np.save(run_dir / "conv_demo" / "input_0.npy", np.zeros((16, 16, 3)))
    (figure,) = plot_folder(run_dir).figures
    assert figure.name == "conv_demo.png"
    assert_png(figure)


def test_captioning_runs_go_to_the_captioning_plotter(tmp_path, monkeypatch):
    import cvlab.plot as plot

    run_dir = make_run(tmp_path / "cap", model={"type": "captioning", "cell_type": "lstm"})
    calls = []

    def fake(run_path, out_dir):
        calls.append((run_path, out_dir))
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "captions.png").write_bytes(b"")
        return [out_dir / "captions.png"]

    monkeypatch.setattr(plot, "_captioning_plotter", lambda: fake)
    result = plot.plot_folder(run_dir)
    assert calls == [(run_dir, run_dir / "plots")]
    assert [p.name for p in result.figures] == ["captions.png"]


def test_latest_picks_the_newest_run_or_sweep_that_did_not_fail(tmp_path, capsys):
    outputs = tmp_path / "outputs"
    run = make_run(outputs / "train" / "2026-11-26" / "03-00-00-000000")
    sweep = make_sweep(outputs / "train" / "multirun" / "2026-11-26" / "04-00-00-000000",
                       [{"baseline": False}])
    (outputs / "plot" / "2026-11-26" / "05-00-00").mkdir(parents=True)  # never a candidate
    assert resolve_target("latest", outputs) == sweep.resolve()
    make_run(outputs / "train" / "2026-11-27" / "01-00-00-000000", status="failed")
    assert resolve_target("latest", outputs) == sweep.resolve()
    assert "skipped 1 newer failed run" in capsys.readouterr().out
    newer = make_run(outputs / "train" / "2026-11-27" / "02-00-00-000000")
    assert resolve_target("latest", outputs) == newer.resolve()
    assert run.is_dir()


def test_bad_targets_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        resolve_target(str(tmp_path / "missing"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a run or sweep folder"):
        resolve_target(str(tmp_path / "empty"), tmp_path)
    with pytest.raises(UserError, match="no train run"):
        resolve_target("latest", tmp_path / "outputs")
    failed = tmp_path / "failed"
    failed.mkdir()
    write_summary(failed, status="failed", error="boom")
    with pytest.raises(UserError, match="nothing to plot"):
        plot_folder(resolve_target(str(failed), tmp_path))


def test_runs_of_different_experiments_are_labelled_by_experiment(tmp_path):
    make_run(tmp_path / "set" / "0", model={"type": "torch_fc", "api": "barebones"},
             experiment="torch_fc_barebones")
    make_run(tmp_path / "set" / "1", model={"type": "torch_cnn", "api": "module"},
             experiment="torch_cnn_module", batch_size=64)
    result = plot_folder(tmp_path / "set")
    assert [r.label for r in result.target.runs] == ["torch_fc_barebones", "torch_cnn_module"]
    assert [p.name for p in result.figures] == ["curves.png"]


def test_describe_a_folder_of_plain_runs(tmp_path):
    make_run(tmp_path / "set" / "a", model=model_config(normalization="layernorm"))
    make_run(tmp_path / "set" / "b", model=model_config(normalization="batchnorm"))
    target = describe_target(tmp_path / "set")
    assert target.is_set and target.varying == ["model.normalization"]
    assert [r.label for r in target.runs] == ["layernorm", "batchnorm"]
