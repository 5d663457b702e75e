"""Run-folder records: the metrics logger, summary.json and the sweep summary."""

from __future__ import annotations

import csv
import json

import pytest

from cvlab.runs import MetricsLogger, read_summary, summarize_sweep, write_summary


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


def test_resumed_logger_drops_rows_after_the_checkpoint(tmp_path):
    with MetricsLogger(tmp_path, ["val_acc"]) as logger:
        for i in range(6):
            logger.log(iteration=i, epoch=0, loss=float(i))
    with MetricsLogger(tmp_path, ["val_acc"], truncate_after_iteration=3) as logger:
        logger.log(iteration=4, epoch=0, loss=40.0)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["iteration"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert rows[-1]["loss"] == "40.0"


def test_summary_merges_and_is_valid_json(tmp_path):
    write_summary(tmp_path, status="running", dataset="synthetic")
    write_summary(tmp_path, status="diverged", metrics={"loss": float("nan"), "acc": 0.5})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == {"status": "diverged", "dataset": "synthetic",
                       "metrics": {"loss": "nan", "acc": 0.5}}
    with pytest.raises(ValueError, match="completed"):
        write_summary(tmp_path, status="finished")
    assert read_summary(tmp_path)["status"] == "diverged"


def test_sweep_summary_reports_every_job_even_a_dead_one(tmp_path):
    for job, status in enumerate(["completed", "diverged"]):
        write_summary(tmp_path / str(job), status=status, metrics={"best_val_acc": 0.1 * job},
                      overrides=[f"seed={job}"])
    (tmp_path / "2").mkdir()  # killed before writing anything
    rows = summarize_sweep(tmp_path)
    assert [r["status"] for r in rows] == ["completed", "diverged", "failed"]
    assert rows[1]["best_val_acc"] == pytest.approx(0.1)
    saved = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert saved == rows
    assert (tmp_path / "sweep_summary.csv").read_text().startswith("job,status")
