"""Sweeps through the console script: parallel jobs, divergence, a failing job, submitit_local."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY_DATA = [
    "dataset=synthetic", "dataset.synthetic_train=300", "dataset.synthetic_test=50",
    "dataset.num_train=100", "dataset.num_val=50", "dataset.num_test=50",
]


def cvlab(tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CVLAB_CACHE": str(tmp_path / "cache")}
    # The console script (python -m cvlab.cli would run the CLI as __main__, apart from the
    # cvlab.cli module that Hydra's sweep callback reports into).
    script = Path(sys.executable).with_name("cvlab")
    return subprocess.run(
        [str(script), *args, f"outputs_root={tmp_path / 'outputs'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
    )


def sweep_dir(tmp_path: Path) -> Path:
    found = sorted((tmp_path / "outputs").rglob("sweep_summary.json"))
    assert len(found) == 1, found
    return found[0].parent


def test_weight_scale_sweep_with_a_diverging_and_a_failing_job(tmp_path):
    # 2 scales x {batchnorm, baseline}; 1e6 makes the baseline overflow (diverged), and a
    # num_train larger than the data makes the jobs of that value fail: the others must
    # still be complete, and the sweep summary must list every job.
    result = cvlab(
        tmp_path, "train", "model=bn_fc", "sweep=weight_scale", *TINY_DATA, "epochs=1",
        "hydra.sweeper.params={model.weight_scale:'1e-3,1e6',baseline:'false,true'}",
        "dataset.num_train=100,5000",
    )
    assert result.returncode == 1, result.stderr  # some jobs failed
    assert "Traceback" not in result.stdout + result.stderr
    assert "RuntimeWarning" not in result.stdout + result.stderr
    folder = sweep_dir(tmp_path)
    rows = json.loads((folder / "sweep_summary.json").read_text())
    assert len(rows) == 8
    for row in rows:
        values = dict(item.lstrip("+").split("=", 1) for item in row["overrides"].split())
        scale, baseline = float(values["model.weight_scale"]), values["baseline"] == "True"
        if values["dataset.num_train"] == "5000":
            assert row["status"] == "failed" and "num_train" in row["error"]
        elif scale == 1e6 and baseline:
            assert row["status"] == "diverged"
        else:
            assert row["status"] == "completed", row
            assert 0 <= row["best_val_acc"] <= 1
            assert row["normalization"] == ("none" if baseline else "batchnorm")
    for row in rows:
        job = folder / str(row["job"])
        if row["status"] != "failed":
            header = (job / "metrics.csv").read_text().splitlines()[0]
            assert header == "iteration,epoch,loss,train_acc,val_acc,lr,elapsed_s"
            assert (job / "model.npz").is_file()
            # a checkpoint at each epoch end; the diverged job stopped before the first one
            assert (job / "checkpoint.npz").is_file() == (row["status"] == "completed")
            # joblib runs one job per core: BLAS threads per job = max(1, cores // jobs)
            assert row["blas_threads"] in (None, 1)
    assert (folder / "sweep_summary.csv").is_file()


@pytest.mark.slow
def test_submitit_local_two_jobs(tmp_path):
    result = cvlab(tmp_path, "train", "model=bn_fc", "sweep=weight_scale", *TINY_DATA,
                   "epochs=1", "launcher=submitit_local",
                   "hydra.sweeper.params={model.weight_scale:'1e-2',baseline:'false,true'}")
    assert result.returncode == 0, result.stderr
    folder = sweep_dir(tmp_path)
    rows = json.loads((folder / "sweep_summary.json").read_text())
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert [r["normalization"] for r in rows] == ["batchnorm", "none"]
    assert all(r["blas_threads"] in (None, 1) for r in rows)  # device.threads = cpus_per_task


@pytest.mark.slow
def test_sweeps_are_reproducible_and_match_a_single_run(tmp_path):
    # The sweep's own settings (hidden dims, batch size) are overridden to match the single run.
    args = ["model=bn_fc", *TINY_DATA, "epochs=2", "batch_size=25", "seed=5",
            "model.weight_scale=0.05", "model.hidden_dims=[20,20]"]
    single = cvlab(tmp_path / "a", "train", *args, "launcher=basic")
    assert single.returncode == 0, single.stderr
    sweep = cvlab(tmp_path / "b", "train", *args, "sweep=weight_scale",
                  "hydra.sweeper.params={model.weight_scale:'0.05',baseline:'false'}")
    assert sweep.returncode == 0, sweep.stderr
    (a_dir,) = (p.parent for p in (tmp_path / "a" / "outputs").rglob("metrics.csv"))
    (b_dir,) = (p.parent for p in (tmp_path / "b" / "outputs").rglob("metrics.csv"))
    columns = slice(0, 6)  # everything but elapsed_s
    strip = [",".join(line.split(",")[columns]) for line in
             (a_dir / "metrics.csv").read_text().splitlines()]
    other = [",".join(line.split(",")[columns]) for line in
             (b_dir / "metrics.csv").read_text().splitlines()]
    assert strip == other
