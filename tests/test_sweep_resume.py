"""A sweep that outlived its process continues in its folder: `cvlab train resume=<sweep>`
keeps its completed jobs untouched, continues the interrupted one from its checkpoint, runs the
ones never started, and ends where an uninterrupted sweep ends; a changed config refuses it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_DATA, finish, start, wait_for

from cvlab.records.reader import RunFolder

# Three jobs, one at a time (basic launcher), each long enough to be caught in the middle.
SWEEP = ["model=bn_fc", *TINY_DATA, "batch_size=25", "epochs=60", "progress=false",
         "print_every=1000000", "device.threads=1", "launcher=basic", "-m",
         "model.weight_scale=1e-2,2e-2,3e-2"]


def sweep_folder(root: Path) -> Path:
    (folder,) = (root / "outputs" / "train" / "multirun").glob("*/*")
    return folder


def interrupted_sweep(tmp_path: Path) -> Path:
    """The sweep stopped by SIGINT while its second job runs: job 0 completed, job 1
    interrupted after a checkpoint, job 2 never started."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    process = start(tmp_path, "train", *SWEEP)
    wait_for("1/checkpoint.npz", tmp_path / "outputs", process)
    process.send_signal(signal.SIGINT)
    finish(process)
    folder = sweep_folder(tmp_path)
    rows = json.loads((folder / "sweep_summary.json").read_text())
    assert [row["status"] for row in rows] == ["completed", "interrupted", "not_started"]
    return folder


def files_of(job: Path) -> dict[str, bytes]:
    return {str(path.relative_to(job)): path.read_bytes() for path in sorted(job.rglob("*"))
            if path.is_file()}


@pytest.mark.slow
def test_a_resumed_sweep_keeps_continues_runs_and_ends_as_if_uninterrupted(tmp_path, cvlab):
    folder = interrupted_sweep(tmp_path / "cut")
    before = files_of(folder / "0")
    resumed = cvlab("train", f"resume={folder}", "launcher=joblib", cwd=tmp_path / "cut")
    assert resumed.returncode == 0, resumed.stderr
    assert "1 kept, 1 continued from their checkpoint, 1 run" in resumed.stdout
    assert files_of(folder / "0") == before  # the completed job is untouched
    rows = json.loads((folder / "sweep_summary.json").read_text())
    assert [row["status"] for row in rows] == ["completed"] * 3
    assert RunFolder(folder / "1").summary().resumed_from == str(folder / "1")

    straight = cvlab("train", *SWEEP, cwd=tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    reference = sweep_folder(tmp_path / "straight")
    for job in ("0", "1", "2"):  # bit-identical: one thread, the same kernels
        ours = RunFolder(folder / job)
        theirs = RunFolder(reference / job)
        assert list(ours.metrics()["loss"].dropna()) == list(theirs.metrics()["loss"].dropna())
        for name, value in theirs.weights("model")["weights"]["params"].items():
            np.testing.assert_array_equal(ours.weights("model")["weights"]["params"][name],
                                          value)


@pytest.mark.slow
def test_a_sweep_whose_jobs_or_configs_changed_is_refused_unless_asked(tmp_path, cvlab):
    folder = interrupted_sweep(tmp_path)
    other_jobs = cvlab("train", f"resume={folder}", "epochs=80")
    assert other_jobs.returncode == 2
    assert "only how they are launched may change" in other_jobs.stderr
    plan = json.loads((folder / "sweep_plan.json").read_text())
    plan["jobs"][2]["config"]["seed"] = 7  # as if a config file had said so when planned
    (folder / "sweep_plan.json").write_text(json.dumps(plan))
    refused = cvlab("train", "resume=latest_sweep")
    assert refused.returncode == 2
    assert "job 2's config changed since it was planned: seed=0 (planned 7)" in refused.stderr
    assert not (folder / "2").exists()  # nothing ran
    changed = cvlab("train", f"resume={folder}", "resume_changed=true")
    assert changed.returncode == 0, changed.stderr
    assert "1 kept, 1 continued" in changed.stdout


@pytest.mark.slow
def test_the_resumed_jobs_run_on_the_launcher_asked_for(tmp_path, cvlab):
    folder = interrupted_sweep(tmp_path)
    resumed = cvlab("train", f"resume={folder}", "launcher=submitit_local")
    assert resumed.returncode == 0, resumed.stderr
    rows = json.loads((folder / "sweep_summary.json").read_text())
    assert [row["status"] for row in rows] == ["completed"] * 3
    assert list((folder / ".submitit").iterdir())  # its two jobs went through submitit
