"""A weight-scale sweep through `launcher=submitit_slurm` on a real SLURM cluster.

CI starts a single-node cluster with scripts/slurm_single_node.sh (when it runs as root and apt
works); elsewhere the test skips, saying why. The jobs run this venv's python on the node, so the
cluster must share this filesystem (a single-node cluster trivially does).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest
from conftest import TINY_DATA

SETUP_HINT = "start one with `sudo bash scripts/slurm_single_node.sh` (.ci/run does, as root)"


def cluster_problem() -> str | None:
    """Why no SLURM cluster can take jobs here, or None when one can."""
    for command in ("sinfo", "squeue", "sbatch", "scontrol"):
        if shutil.which(command) is None:
            return f"no SLURM client ({command} not on PATH): {SETUP_HINT}"
    outputs = {}
    for command in (["sinfo", "-h", "-N", "-o", "%T"], ["squeue", "-h"]):
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return f"{command[0]} got no answer within 30 s: {SETUP_HINT}"
        if result.returncode != 0:
            first = (result.stderr.strip().splitlines() or ["no output"])[0]
            return f"{command[0]} failed ({first}): {SETUP_HINT}"
        outputs[command[0]] = result.stdout
    states = outputs["sinfo"].split()
    if not any(re.match(r"(idle|mixed|allocated|completing)", s) for s in states):
        return f"no SLURM node takes jobs (states: {', '.join(states) or 'none'}): {SETUP_HINT}"
    return None


def default_partition() -> str:
    """The cluster's default partition (sinfo marks it with '*')."""
    listed = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True,
                            timeout=30).stdout.split()
    return next((p.rstrip("*") for p in listed if p.endswith("*")), listed[0].rstrip("*"))


def job_state(job_id: str, settle_s: float = 30.0) -> str:
    """The scheduler's record of a job ('COMPLETED', ...), from scontrol. A job whose result
    the launcher has read can still be RUNNING or COMPLETING for a moment (slurmd reports its
    end asynchronously): wait up to `settle_s` for it to settle."""
    deadline = time.monotonic() + settle_s
    while True:
        shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True,
                               text=True, timeout=30)
        found = re.search(r"JobState=(\S+)", shown.stdout)
        state = found[1] if found else f"unknown ({shown.stderr.strip()})"
        if state not in ("RUNNING", "COMPLETING") or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


@pytest.mark.slow
def test_weight_scale_sweep_runs_as_slurm_jobs(cvlab, tmp_path):
    problem = cluster_problem()
    if problem:
        pytest.skip(problem)
    partition = default_partition()
    result = cvlab(
        "train", "model=bn_fc", "sweep=weight_scale", *TINY_DATA, "epochs=1",
        "launcher=submitit_slurm", f"hydra.launcher.partition={partition}",
        "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10", "device.threads=1",
        "hydra.sweeper.params={model.weight_scale:'1e-3,1e-1',baseline:'false,true'}",
        env={"CVLAB_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    (summary,) = (tmp_path / "outputs").rglob("sweep_summary.json")
    rows = json.loads(summary.read_text())
    assert [r["status"] for r in rows] == ["completed"] * 4
    assert sorted((r["weight_scale"], r["normalization"]) for r in rows) == [
        (1e-3, "batchnorm"), (1e-3, "none"), (1e-1, "batchnorm"), (1e-1, "none")]
    assert all(0.0 <= r["best_val_acc"] <= 1.0 for r in rows)
    # Each job went through the scheduler: submitit's folder per array task, and SLURM's record.
    job_ids = sorted(p.name for p in (summary.parent / ".submitit").iterdir()
                     if re.fullmatch(r"\d+_\d+", p.name))
    assert len(job_ids) == 4, job_ids
    assert {job_id: job_state(job_id) for job_id in job_ids} == dict.fromkeys(job_ids,
                                                                               "COMPLETED")
    submission = next((summary.parent / ".submitit").rglob("*_submission.sh")).read_text()
    for option in (f"--partition={partition}", "--cpus-per-task=1", "--mem=1GB", "--time=10"):
        assert f"#SBATCH {option}\n" in submission


# A training of about 45 s (on a 2-core VM, one thread; an epoch with its evaluation and
# checkpoint takes about 35 ms) under a 1-minute time limit: SLURM warns
# the job (USR2) before its limit, submitit requeues it, and the requeued job continues from
# its own checkpoint.npz. SLURM delays a requeued job's start by about two minutes.
REQUEUED = ["model=bn_fc", *TINY_DATA, "batch_size=25", "epochs=1200", "progress=false",
            "print_every=1000000", "device.threads=1", "seed=0"]


@pytest.mark.cluster
def test_a_job_past_its_time_limit_is_requeued_and_continues_from_its_checkpoint(cvlab,
                                                                                  tmp_path):
    from cvlab.records.reader import RunFolder

    problem = cluster_problem()
    if problem:
        pytest.skip(problem)
    env = {"CVLAB_CACHE": str(tmp_path / "cache")}
    result = cvlab("train", *REQUEUED, "launcher=submitit_slurm", "-m", "seed=0",
                   f"hydra.launcher.partition={default_partition()}",
                   "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
                   "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=30",
                   env=env, cwd=tmp_path / "slurm")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (job,) = (tmp_path / "slurm" / "outputs").rglob("multirun/*/*/0")
    log = (job / "train.log").read_text()
    assert "Requeued job" in log and "continuing the earlier attempt" in log
    requeued = RunFolder(job)
    assert requeued.summary().status == "completed"

    straight = cvlab("train", *REQUEUED, "launcher=basic", env=env, cwd=tmp_path / "local")
    assert straight.returncode == 0, straight.stderr
    (reference,) = (tmp_path / "local" / "outputs" / "train").glob("*/*")
    uninterrupted = RunFolder(reference)
    for key in ("best_val_acc", "final_val_acc", "final_loss", "iterations"):
        assert requeued.summary().metrics[key] == uninterrupted.summary().metrics[key], key
    for name, value in uninterrupted.weights("model")["weights"]["params"].items():
        assert (requeued.weights("model")["weights"]["params"][name] == value).all(), name
