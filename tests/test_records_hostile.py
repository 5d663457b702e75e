"""Hostile run folders: one reader (cvlab.records.reader) checks what every command reads, so
`cvlab train resume=`, `cvlab eval` and `cvlab plot` give the same one-line refusal (exit 2)
for the same damaged or tampered folder, and write nothing anywhere. A run killed without a
word reads as `stopped`, and a metrics.csv cut mid-row still plots its intact rows.
"""

from __future__ import annotations

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
import yaml
from conftest import CVLAB, TINY_DATA, make_run, run_cvlab

from cvlab.plot import plot_folder
from cvlab.records.files import RecordError
from cvlab.records.processes import host_name
from cvlab.records.reader import RunFolder
from cvlab.records.summary import write_summary

TINY_RUN = ["model=bn_fc", *TINY_DATA, "epochs=2", "batch_size=25", "progress=false"]
DEEP = 100_000  # nested lists in a tampered state.json


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """The folder of one tiny real training run (checkpoint, weights, config, summary)."""
    root = tmp_path_factory.mktemp("real")
    result = run_cvlab("train", *TINY_RUN, cwd=root,
                       env={"CVLAB_CACHE": str(tmp_path_factory.mktemp("cache"))})
    assert result.returncode == 0, result.stderr
    (folder,) = (path.parent for path in (root / "outputs").rglob("summary.json"))
    return folder


def nest_state(path: Path) -> None:
    """Put DEEP nested lists into the state.json of the .npz archive at `path`."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    document = json.loads(members["state.json"])
    document["tree"]["deep"] = "DEEP"
    text = json.dumps(document).replace('"DEEP"', "[" * DEEP + "]" * DEEP)
    members["state.json"] = text.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def pickle_weights(path: Path) -> None:
    """Replace the first array of the weights file at `path` by a pickled object array."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    first = sorted(name for name in members if name.endswith(".npy"))[0]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            if name == first:
                with archive.open(name, "w") as member:
                    np.lib.format.write_array(member, np.array([print], dtype=object),
                                              allow_pickle=True)
            else:
                archive.writestr(name, data)


def edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


TAMPERINGS = {  # name: (file changed, how)
    "deep_checkpoint": ("checkpoint.npz", nest_state),
    "deep_model": ("model.npz", nest_state),
    "pickled_best_weights": ("model_best.npz", pickle_weights),
    "target_at_the_top": ("config.yaml", lambda path: edit_yaml(
        path, lambda data: data.update(_target_="os.system"))),
    "target_nested": ("config.yaml", lambda path: edit_yaml(
        path, lambda data: data["optimizer"].update(extra=[{"_target_": "os.system"}]))),
    "family_a_path": ("summary.json", lambda path: edit_json(
        path, lambda data: data.update(family="../../etc"))),
    "model_type_code": ("summary.json", lambda path: edit_json(
        path, lambda data: data.update(model_type="__import__('os')"))),
    "metrics_strings": ("summary.json", lambda path: edit_json(
        path, lambda data: data["metrics"].update(best_val_acc="rm -rf /"))),
}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and modification time."""
    return {str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(root.rglob("*"))}


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_resume_eval_and_plot_give_a_tampered_folder_the_same_one_line(cvlab, tmp_path,
                                                                      real_run, tampering):
    run = tmp_path / "run"
    shutil.copytree(real_run, run)
    file_name, tamper = TAMPERINGS[tampering]
    tamper(run / file_name)
    with pytest.raises(RecordError) as refused:  # what the one reader says of the folder
        RunFolder(run).check()
    reason = str(refused.value)
    assert file_name in reason and "\n" not in reason
    before = snapshot(tmp_path)
    for command in (["train", f"resume={run}"], ["eval", f"run={run}"], ["plot", f"run={run}"]):
        result = cvlab(*command)
        assert result.returncode == 2, (command, result.stderr)
        assert reason in one_line(result.stderr), command
        assert snapshot(tmp_path) == before, command  # no run folder, error.log, eval.json


def test_summary_metrics_cvlab_writes_still_plot(tmp_path):
    # non-finite floats are written as strings, and the conv demo's metrics are lists
    diverged = make_run(tmp_path / "diverged", losses=[2.3, float("nan")], status="diverged")
    edit_json(diverged / "summary.json", lambda data: data["metrics"].update(
        final_loss="nan", final_loss_mean="inf", best_val_acc="-inf"))
    result = plot_folder(diverged)
    assert result.report.is_file() and "this run is diverged" in result.notes
    demo = tmp_path / "demo"
    demo.mkdir()
    np.save(demo / "conv_demo_inputs.npy", np.zeros((2, 3, 8, 8)))
    np.save(demo / "conv_demo_outputs.npy", np.ones((2, 2, 8, 8)))
    write_summary(demo, status="completed", command="train", family="demo",
                  model_type="conv_demo", metrics={"images": ["a", "b"], "image_size": 8,
                                                   "filters": ["grayscale", "edges"]})
    assert [path.name for path in plot_folder(demo).figures] == ["conv_demo.png"]


def test_a_metrics_file_cut_mid_row_plots_its_intact_rows(cvlab, tmp_path, real_run):
    run = tmp_path / "run"
    shutil.copytree(real_run, run)
    path = run / "metrics.csv"
    lines = path.read_text().splitlines(keepends=True)
    intact = len(lines) // 2  # rows after the header kept whole
    path.write_text("".join(lines[:intact + 1]) + lines[intact + 1][:7] + "\x00garbage,,\n"
                    + "zzz\n")
    frame = RunFolder(run).metrics()
    assert len(frame) == intact
    assert frame["iteration"].tolist() == [float(line.split(",")[0])
                                           for line in lines[1:intact + 1]]
    result = cvlab("plot", f"run={run}")
    assert result.returncode == 0, result.stderr
    assert (run / "plots" / "curves.png").is_file()


def test_a_killed_run_reads_as_stopped_and_plot_says_so(cvlab, tmp_path):
    env = dict(os.environ, CVLAB_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg")
    process = subprocess.Popen([CVLAB, "train", *TINY_RUN, "epochs=100000"], cwd=tmp_path,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "outputs").rglob("checkpoint.npz")):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (run,) = (path.parent for path in (tmp_path / "outputs").rglob("summary.json"))
    assert json.loads((run / "summary.json").read_text())["status"] == "running"
    assert RunFolder(run).summary().status == "stopped"
    result = cvlab("plot", f"run={run}")
    assert result.returncode == 0, result.stderr
    assert "this run stopped without a final status" in result.stdout
    report = (run / "report.md").read_text()
    assert "stopped without a final status" in report and "| status | stopped |" in report


def test_running_is_running_only_while_its_process_lives(tmp_path):
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its pid names no process
    dead_pid = child.pid
    for pid, host, status in ((os.getpid(), host_name(), "running"),
                              (dead_pid, host_name(), "stopped"),
                              (dead_pid, "another-host", "running")):  # taken at its word
        write_summary(tmp_path, status="running", pid=pid, host=host)
        assert RunFolder(tmp_path).summary().status == status
