"""A sweep's records: the closing of an interrupted sweep, and its summary of all jobs (those
its plan, cvlab.records.plan, lists but that never started included).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cvlab.records.files import (
    SWEEP_SUMMARY_CSV,
    SWEEP_SUMMARY_JSON,
    RecordError,
    atomic_write_text,
    to_json,
)
from cvlab.records.folders import job_dirs
from cvlab.records.plan import Plan, read_plan
from cvlab.records.processes import process_alive
from cvlab.records.reader import RunFolder
from cvlab.records.summary import RunSummary, read_summary, save_summary


def close_interrupted_jobs(sweep_dir: Path) -> list[int]:
    """After a sweep was interrupted (and what it started on this host was stopped): mark its
    jobs whose process is gone without saying how they ended, or without a summary (stopped
    while starting), as `interrupted`, and remove the temporary files of their writes that
    were cut short; returns their numbers. A job whose process still runs (on another host) is
    left alone, its files too."""
    closed = []
    for job in job_dirs(sweep_dir):
        summary = read_summary(job)
        if summary is not None and summary.status == "running" and summary.pid is not None \
                and process_alive(summary.pid, summary.host):
            continue
        for stray in job.rglob(".*.tmp"):
            with contextlib.suppress(OSError):
                stray.unlink()
        if summary is None or summary.status == "running":
            summary = summary or RunSummary()
            summary.status = "interrupted"
            summary.error = summary.error or "the sweep was interrupted while this job ran"
            save_summary(job, summary)
            closed.append(int(job.name))
    return closed


def sweep_rows(sweep_dir: Path, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per job: job, status, overrides, metrics, settings, dataset, wall time, error.

    A job folder without a summary (killed before it wrote one) is reported as failed; a
    planned job without a folder (the sweep stopped before it) as `not_started`.
    """
    wanted = set(keys) if keys is not None else None
    rows = []
    plan = _plan_or_none(sweep_dir)
    planned = {job.number: job.overrides for job in plan.jobs} if plan is not None else {}
    for job in job_dirs(sweep_dir):
        in_plan = planned.pop(int(job.name), [])
        try:
            summary = RunFolder(job).summary() or RunSummary(status="failed",
                                                             error="no summary.json")
        except RecordError as err:
            summary = RunSummary(status="failed", error=str(err))
        row: dict[str, Any] = {"job": int(job.name), "status": summary.status}
        if summary.overrides or in_plan:  # a job stopped while starting has only its plan's
            row["overrides"] = " ".join(summary.overrides or in_plan)
        for key, value in {**summary.settings, **summary.metrics}.items():
            if wanted is None or key in wanted:
                row[key] = value
        for key in ("family", "dataset", "wall_time_s", "error"):
            if getattr(summary, key) is not None:
                row[key] = getattr(summary, key)
        rows.append(row)
    rows += [{"job": number, "status": "not_started", "overrides": " ".join(overrides)}
             for number, overrides in planned.items()]
    return sorted(rows, key=lambda row: row["job"])


def _plan_or_none(sweep_dir: Path) -> Plan | None:
    try:
        return read_plan(sweep_dir)
    except RecordError:
        return None


def summarize_sweep(sweep_dir: Path, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Write sweep_summary.json / .csv from every job's summary; return the rows."""
    import pandas as pd

    rows = sweep_rows(sweep_dir, keys)
    atomic_write_text(Path(sweep_dir) / SWEEP_SUMMARY_JSON, to_json(rows))
    atomic_write_text(Path(sweep_dir) / SWEEP_SUMMARY_CSV,
                      pd.DataFrame(rows).to_csv(index=False))
    return rows


