"""Run-folder records: atomic writes, exclusive folders, the metrics logger, summary.json and
the sweep summary."""

from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import pytest

from cvlab.records.files import atomic_write_text
from cvlab.records.folders import create_run_dir
from cvlab.records.metrics import MetricsLogger
from cvlab.records.summary import RunSummary, read_summary, write_summary
from cvlab.records.sweeps import close_interrupted_jobs, summarize_sweep


def test_metrics_rows_are_flushed_and_readable_while_running(tmp_path):
    logger = MetricsLogger(tmp_path, ["train_acc", "val_acc", "lr", "elapsed_s"])
    logger.log(iteration=0, epoch=0, loss=2.3, lr=1e-3)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert rows[0]["loss"] == "2.3" and rows[0]["train_acc"] == ""
    assert float(rows[0]["elapsed_s"]) >= 0
    logger.log(iteration=10, epoch=1, train_acc=0.5, val_acc=0.25)
    logger.close()
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert header == "iteration,epoch,loss,train_acc,val_acc,lr,elapsed_s"
    assert len(list(csv.DictReader((tmp_path / "metrics.csv").open()))) == 2


def test_unknown_metric_column_is_refused(tmp_path):
    with MetricsLogger(tmp_path, ["val_acc"]) as logger, pytest.raises(ValueError, match="tran"):
        logger.log(iteration=0, tran_acc=1.0)


def test_a_resumed_run_carries_the_rows_up_to_its_checkpoint(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    with MetricsLogger(old, ["val_acc"]) as logger:
        for i in range(1, 7):
            logger.log(iteration=i, epoch=0, loss=float(i))
    with MetricsLogger(new, ["val_acc"], carry_from=old, carry_up_to=3) as logger:
        logger.log(iteration=4, epoch=0, loss=40.0)
    rows = list(csv.DictReader((new / "metrics.csv").open()))
    assert [r["iteration"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[-1]["loss"] == "40.0"
    assert len((old / "metrics.csv").read_text().splitlines()) == 7  # the old run untouched


def test_summary_merges_and_is_valid_json(tmp_path):
    write_summary(tmp_path, status="running", dataset="synthetic")
    write_summary(tmp_path, status="diverged", metrics={"loss": float("nan"), "acc": 0.5},
                  layer="conv")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["dataset"] == "synthetic"
    assert summary["metrics"] == {"loss": "nan", "acc": 0.5}
    assert summary["details"] == {"layer": "conv"}  # a command's own fields
    with pytest.raises(ValueError, match="completed"):
        write_summary(tmp_path, status="finished")
    assert read_summary(tmp_path).status == "diverged"
    (tmp_path / "summary.json").write_text("[1, 2]")  # not a summary: read as none
    assert read_summary(tmp_path) is None


def test_atomic_write_leaves_the_old_file_and_no_temporary_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")

    def full_disk(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_summary_on_a_full_disk_is_overwritten_in_place(tmp_path, monkeypatch):
    write_summary(tmp_path, status="running")
    import cvlab.records.summary as runs

    def no_space(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs, "atomic_write_text", no_space)
    write_summary(tmp_path, status="failed", error="disk full")
    assert read_summary(tmp_path).status == "failed"


def test_run_folders_are_never_shared(tmp_path):
    first = create_run_dir(tmp_path, "10-00-00-000000")
    second = create_run_dir(tmp_path, "10-00-00-000000")  # the same clock reading
    assert first != second and first.is_dir() and second.is_dir()
    assert second.name == "10-00-00-000000-1"


def test_sweep_summary_reports_every_job_even_a_dead_one(tmp_path):
    for job, status in enumerate(["completed", "diverged"]):
        write_summary(tmp_path / str(job), status=status, metrics={"best_val_acc": 0.1 * job},
                      overrides=[f"seed={job}"])
    (tmp_path / "2").mkdir()  # killed before writing anything
    rows = summarize_sweep(tmp_path)
    assert [r["status"] for r in rows] == ["completed", "diverged", "failed"]
    write_summary(tmp_path / "3", status="running")  # its worker was stopped
    (tmp_path / "3" / ".model.npz-abc.tmp").write_bytes(b"half")  # while writing
    assert close_interrupted_jobs(tmp_path) == [2, 3]  # after an interruption
    assert not list(tmp_path.rglob("*.tmp"))
    rows = summarize_sweep(tmp_path)
    assert [r["status"] for r in rows] == ["completed", "diverged", "interrupted", "interrupted"]
    assert rows[1]["best_val_acc"] == pytest.approx(0.1)
    saved = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert saved == rows
    assert (tmp_path / "sweep_summary.csv").read_text().startswith("job,status")


def test_summary_keys_are_one_set(tmp_path):
    summary = RunSummary(status="completed", family="numpy", metrics={"best_val_acc": 0.5})
    assert summary.metric("best_val_acc") == 0.5 and summary.metric("test_acc") is None
    assert RunSummary.from_dict({"status": "weird", "extra": 1}).status == "failed"
    assert RunSummary.from_dict({"status": "completed", "extra": 1}).details == {"extra": 1}
    assert isinstance(Path(tmp_path), Path)
