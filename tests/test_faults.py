"""Faults are inputs too: signals, hostile files, unwritable and full disks, clock collisions.

Each ends with one line on stderr, a final status in summary.json and nothing lost: no
traceback, no temporary file left, no summary stuck at `running`, nothing executed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import CVLAB, TINY_DATA, finish, one_line, start, wait_for

from cvlab.records.state import load_state
from cvlab.records.summary import read_summary


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_a_run_as_interrupted_with_its_checkpoint_intact(tmp_path, signum, code):
    process = start(tmp_path, "train", "model=bn_fc", *TINY_DATA, "epochs=100000", "batch_size=25",
                    "progress=false", "print_every=1000000")
    wait_for("checkpoint.npz", tmp_path / "outputs", process)
    process.send_signal(signum)
    _, stderr = finish(process)
    assert process.returncode == code
    assert "interrupted" in one_line(stderr)
    (run_dir,) = (p.parent for p in (tmp_path / "outputs").rglob("summary.json"))
    summary = read_summary(run_dir)
    assert summary.status == "interrupted"
    assert summary.metrics["iterations"] >= 4  # what it did is recorded
    assert load_state(run_dir / "checkpoint.npz")["task"]["epoch"] >= 1
    assert not list(run_dir.rglob("*.tmp"))


@pytest.mark.parametrize("launcher, whole_group", [
    ("joblib", True), ("joblib", False), ("submitit_local", False)],
    ids=["joblib-ctrl-c", "joblib-sigterm-to-parent", "submitit_local-sigterm-to-parent"])
def test_an_interrupted_parallel_sweep_stops_every_job_and_records_it(tmp_path, launcher,
                                                                     whole_group):
    process = start(tmp_path, "train", "model=bn_fc", "sweep=weight_scale", *TINY_DATA,
                    "epochs=100000", "batch_size=25", "print_every=1000000",
                    f"launcher={launcher}",
                    "hydra.sweeper.params={model.weight_scale:'1e-3,1e-2,1e-1'}")
    wait_for("checkpoint.npz", tmp_path / "outputs", process)
    if whole_group:  # Ctrl-C in a terminal: SIGINT to every process of the group
        os.killpg(process.pid, signal.SIGINT)
    else:  # `kill <pid>`, timeout, SLURM: SIGTERM to the launcher only
        process.send_signal(signal.SIGTERM)
    _, stderr = finish(process)
    assert process.returncode == (130 if whole_group else 143)
    assert "sweep summary in" in one_line(stderr)
    assert processes_left(process.pid) == []  # no job trains on behind the summary's back
    (summary_path,) = (tmp_path / "outputs").rglob("sweep_summary.json")
    rows = json.loads(summary_path.read_text())
    # every planned job (3 scales x baseline or not) is listed: those that ran, and those the
    # sweep never started
    assert [row["job"] for row in rows] == list(range(6))
    assert all(row["status"] in ("interrupted", "completed", "not_started") for row in rows)
    assert any(row["status"] == "interrupted" for row in rows)
    assert all("model.weight_scale=" in row["overrides"] for row in rows)
    # the sweep's summary says what each job's own summary says
    for row in rows:
        own = summary_path.parent / str(row["job"]) / "summary.json"
        assert (json.loads(own.read_text())["status"] if own.exists() else "not_started") \
            == row["status"]
    assert not list((tmp_path / "outputs").rglob("*.tmp"))


def processes_left(session: int, wait_s: float = 10.0) -> list[str]:
    """The processes of a session (but zombies) still there after up to `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if entry.name.isdigit() and int(fields[3]) == session and fields[0] != "Z":
                    left.append((entry / "cmdline").read_text().replace("\0", " "))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def evil_npz(path: Path, marker: Path) -> None:
    """A state file whose reading would unpickle an object that creates `marker`."""
    payload = np.array([Exploit(marker)], dtype=object)
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("a0.npy", "w") as member:
            np.lib.format.write_array(member, payload, allow_pickle=True)
        archive.writestr("state.json", json.dumps({
            "format": "cvlab-state", "version": 1, "kind": "checkpoint",
            "tree": {"meta": {}, "loop": {}, "task": {"x": {"__array__": "a0"}}}}))


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


FAMILIES = {
    "numpy": ["model=fc", *TINY_DATA, "epochs=1"],
    "torch": ["model=torch_fc", "model.hidden_dim=8", *TINY_DATA, "epochs=1", "device=cpu"],
    "captioning": ["model=caption_rnn", "dataset=shapes_captions", "dataset.shapes_train=30",
                   "dataset.shapes_val=10", "model.hidden_dim=8", "model.wordvec_dim=8",
                   "epochs=1", "batch_size=20", "device=cpu"],
}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_hostile_checkpoint_is_refused_and_never_executed(tmp_path, cvlab, family,
                                                            monkeypatch):
    monkeypatch.setenv("CVLAB_CACHE", str(tmp_path / "cache"))
    first = cvlab("train", *FAMILIES[family], "progress=false")
    assert first.returncode == 0, first.stderr
    (run_dir,) = (p.parent for p in (tmp_path / "outputs").rglob("checkpoint.npz"))
    marker = tmp_path / "executed"
    evil_npz(run_dir / "checkpoint.npz", marker)
    (run_dir / "checkpoint.pkl").write_bytes(b"cos\nsystem\n(S'touch executed'\ntR.")
    resumed = cvlab("train", f"resume={run_dir}", "epochs=2")
    assert resumed.returncode == 2
    assert "checkpoint.npz" in one_line(resumed.stderr)
    assert not marker.exists()
    for name in ("model.npz", "model_best.npz"):  # plot and eval read the weights
        evil_npz(run_dir / name, marker)
    for command in ("plot", "eval"):  # the same folder, the same answer
        result = cvlab(command, f"run={run_dir}")
        assert result.returncode == 2 and "checkpoint.npz" in one_line(result.stderr)
    assert not marker.exists()


def test_the_same_clock_reading_never_shares_a_run_folder(tmp_path, cvlab, monkeypatch):
    import datetime

    import cvlab.records.folders as runs

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5, 678)

    monkeypatch.setattr(runs.datetime, "datetime", Frozen)
    for _ in range(2):
        assert cvlab("train", "model=fc", *TINY_DATA, "epochs=1").returncode == 0
    folders = sorted(p.name for p in (tmp_path / "outputs" / "train").glob("*/*"))
    assert folders == ["03-04-05-000678", "03-04-05-000678-1"]
    for name in folders:
        (folder,) = (tmp_path / "outputs" / "train").glob(f"*/{name}")
        assert len((folder / "metrics.csv").read_text().splitlines()) == 1 + 1  # not shared


def can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not can_mount(), reason="needs root and unshare -m to mount "
                                 "a read-only or tiny tmpfs in a private mount namespace")


def in_tmpfs(tmp_path: Path, options: str, *args: str) -> subprocess.CompletedProcess:
    """`cvlab args...` with outputs on a fresh tmpfs mounted with `options`, in a private
    mount namespace."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    command = " ".join([CVLAB, *args, f"outputs_root={mount / 'outputs'}"])
    script = (f"mount -t tmpfs -o {options} tmpfs {mount} && {command}; code=$?; "
              f"find {mount} -name '*.tmp' | sed 's/^/TMP /'; "
              f"cat {mount}/outputs/train/*/*/summary.json 2>/dev/null; exit $code")
    env = dict(os.environ, CVLAB_CACHE=str(tmp_path / "cache"))
    return subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


@needs_mount
def test_a_read_only_outputs_root_is_one_line(tmp_path):
    result = in_tmpfs(tmp_path, "ro,size=1m", "train", "model=fc", *TINY_DATA, "epochs=1")
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "Read-only file system" in line and str(tmp_path / "mnt") in line


@needs_mount
@pytest.mark.parametrize("size", ["400k", "12k"], ids=["during-the-run", "at-the-start"])
def test_a_full_disk_is_one_line_with_no_temporary_and_no_running_summary(tmp_path, size):
    result = in_tmpfs(tmp_path, f"size={size}", "train", "model=fc",
                      "model.hidden_dims=[300,300]", *TINY_DATA, "epochs=3", "progress=false")
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "No space left on device" in line and str(tmp_path / "mnt") in line
    assert "TMP " not in result.stdout
    assert '"status": "running"' not in result.stdout
