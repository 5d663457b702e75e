"""`cvlab plot` through the console entry point: exit codes, summary.json, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_plot import make_run, make_sweep, model_config


def cvlab(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "cvlab.cli", "plot", *args,
               f"outputs_root={tmp_path / 'outputs'}"]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_plot_latest_sweep_writes_plots_and_report_into_the_sweep(tmp_path):
    outputs = tmp_path / "outputs"
    make_run(outputs / "train" / "2026-01-01" / "10-00-00-000000")
    sweep = make_sweep(outputs / "train" / "multirun" / "2026-01-01" / "11-00-00-000000",
                       [{"model": model_config(weight_scale=scale)} for scale in (1e-3, 1e-1)])
    result = cvlab(tmp_path, "run=latest")
    assert result.returncode == 0, result.stderr
    assert (sweep / "plots" / "weight_scale.png").is_file()
    assert (sweep / "report.md").is_file()
    assert "best val acc" in result.stdout  # the rich table of key numbers
    assert not (outputs / "plot").exists()  # plotting adds to the folder it plots, nothing else


def test_bad_run_path_is_one_line_and_exit_2(tmp_path):
    result = cvlab(tmp_path, f"run={tmp_path / 'nope'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cvlab plot: run=")
    assert "does not exist" in lines[0] and "Traceback" not in result.stderr
