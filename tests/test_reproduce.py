"""`cvlab reproduce` end to end on the quick profile: the items of a part measured and judged
into reproduction.json and the report, a rerun that keeps every completed run untouched, an
interruption whose rerun completes only what was missing, a broken implementation that makes
its items not held (exit 1), and bad input in one line."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import finish, start, wait_for


def folder_of(root: Path) -> Path:
    (folder,) = (root / "outputs" / "reproduce").glob("*/*")
    return folder


def job_files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.glob("[0-9]*/**/*")) if path.is_file()}


@pytest.mark.slow
def test_a_part_is_reproduced_and_a_rerun_keeps_its_runs(cvlab, tmp_path):
    first = cvlab("reproduce", "part=dropout", "profile=quick")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr
    folder = folder_of(tmp_path)
    reproduction = json.loads((folder / "reproduction.json").read_text())
    dropout = [item for item in reproduction["items"] if item["notebook"] == "Dropout"]
    assert dropout and all(item["verdict"] in ("held", "not_run") for item in dropout)
    assert any(item["verdict"] == "held" and item["runs"] for item in dropout)  # from its runs
    assert reproduction["counts"]["not_held"] == 0
    assert {"report.md", "report.html"} <= {path.name for path in folder.iterdir()}
    before = job_files(folder)
    assert before  # the runs are in the reproduction folder

    again = cvlab("reproduce", "part=dropout", "profile=quick")
    assert again.returncode == 0, again.stderr
    assert " 0 run" in again.stdout and " kept" in again.stdout
    assert job_files(folder) == before  # kept as they were, byte for byte


@pytest.mark.slow
def test_an_interrupted_reproduction_reports_and_its_rerun_completes_it(cvlab, tmp_path):
    process = start(tmp_path, "reproduce", "part=batchnorm", "profile=quick",
                    "launcher=basic")
    wait_for("2/summary.json", tmp_path / "outputs", process)
    process.send_signal(signal.SIGTERM)
    _, stderr = finish(process)
    assert process.returncode == 143, stderr
    folder = folder_of(tmp_path)
    interrupted = json.loads((folder / "reproduction.json").read_text())
    assert interrupted["interrupted"] and interrupted["counts"]["not_run"] > 0
    done = {path.parent.name for path in folder.glob("[0-9]*/summary.json")
            if json.loads(path.read_text())["status"] == "completed"}

    rerun = cvlab("reproduce", "part=batchnorm", "profile=quick",
                  f"outputs_root={tmp_path / 'outputs'}")
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr
    assert f"{len(done)} kept" in rerun.stdout
    final = json.loads((folder / "reproduction.json").read_text())
    assert "interrupted" not in final and final["counts"]["not_held"] == 0


def test_a_broken_update_rule_makes_its_items_not_held(cvlab, monkeypatch):
    from cvlab.train import optim

    def adam_off_by_a_little(w, dw, config=None):  # an update that is nearly right
        next_w, config = real(w, dw, config)
        return next_w * (1 + 1e-4), config

    real = optim.UPDATE_RULES["adam"]
    monkeypatch.setitem(optim.UPDATE_RULES, "adam", adam_off_by_a_little)
    result = cvlab("reproduce", "part=layers", "profile=quick")
    assert result.returncode == 1
    assert "not held: layers.update.adam.next_w" in result.stdout
    assert "not held: layers.update.sgd_momentum" not in result.stdout  # the others hold


@pytest.mark.parametrize("arguments, message", [
    (["part=cats"], "unknown part(s) cats"),
    (["profile=slow"], "profile='slow' is not allowed: one of auto, quick, full"),
    (["part=layers", "profile=full"], "profile=full needs CIFAR-10, not found at"),
])
def test_bad_input_is_one_line(cvlab, tmp_path, arguments, message):
    result = cvlab("reproduce", *arguments, env={"CVLAB_DATA": str(tmp_path / "nothing")})
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "outputs").exists()


def test_an_outputs_root_that_cannot_hold_a_folder_is_one_line(cvlab, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    result = cvlab("reproduce", "part=layers", "profile=quick",
                   f"outputs_root={tmp_path / 'a_file'}")
    assert result.returncode == 1
    assert "cannot create the reproduction folder" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_tampered_last_reproduction_is_refused(cvlab, tmp_path):
    assert cvlab("reproduce", "part=layers", "profile=quick").returncode == 0
    folder = folder_of(tmp_path)
    (folder / "reproduction.json").write_text('{"format": 1, "command": "os.system"}')
    result = cvlab("reproduce", "part=layers", "profile=quick")
    assert result.returncode == 2 and "cannot be continued" in result.stderr
    assert cvlab("reproduce", "part=layers", "profile=quick", "rerun=true").returncode == 0
