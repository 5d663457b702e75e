"""`cvlab plot` through the CLI (in process): exit codes, what it writes, one-line errors."""

from __future__ import annotations

from conftest import make_run, make_sweep, model_config


def test_plot_latest_sweep_writes_plots_and_report_into_the_sweep(cvlab, tmp_path):
    outputs = tmp_path / "outputs"
    make_run(outputs / "train" / "2026-01-01" / "10-00-00-000000")
    sweep = make_sweep(outputs / "train" / "multirun" / "2026-01-01" / "11-00-00-000000",
                       [{"model": model_config(weight_scale=scale)} for scale in (1e-3, 1e-1)])
    result = cvlab("plot", "run=latest", f"outputs_root={outputs}")
    assert result.returncode == 0, result.stderr
    assert (sweep / "plots" / "weight_scale.png").is_file()
    assert (sweep / "report.md").is_file()
    assert "best val acc" in result.stdout  # the rich table of key numbers
    assert not (outputs / "plot").exists()  # plotting adds to the folder it plots, nothing else


def test_bad_run_path_is_one_line_and_exit_2(cvlab, tmp_path):
    result = cvlab("plot", f"run={tmp_path / 'nope'}", f"outputs_root={tmp_path / 'outputs'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cvlab plot: run=")
    assert "does not exist" in lines[0] and "Traceback" not in result.stderr
