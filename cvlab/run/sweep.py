"""Continuing a planned piece of work (a sweep, a reproduction) in its folder.

    plan = make_plan("train", arguments, jobs)         # before the first job starts
    work = resume_work(sweep_dir, plan, jobs, allow_changes=False)
    work.to_run                                         # the jobs to launch (continued ones too)

Each planned job is, by what its folder holds:
    kept       completed or diverged: nothing of it is touched
    continued  stopped with a checkpoint (interrupted, killed, requeued): it continues in its
               folder from that checkpoint (cvlab.run.train does, on finding it)
    run        failed, or never started, or stopped before its first checkpoint: it runs anew
               (a failed attempt's folder is set aside under .attempts/ first)
A job still running (its process alive on this host) refuses the resume. The jobs' configs are
composed again from today's config files; one that differs from its planned config in a field a
resumed run cannot change refuses the resume too, naming the field (unless allowed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvlab.config.train import TrainConfig
from cvlab.errors import UserError
from cvlab.records.files import CHECKPOINT_NAME, RecordError, flatten
from cvlab.records.plan import Plan, PlannedJob
from cvlab.records.reader import RunFolder
from cvlab.run.resume import RESUMABLE_CHANGES
from cvlab.run.train import KEPT_STATUSES

ATTEMPTS = ".attempts"


@dataclass
class Work:
    """What a resume of a plan does with each job."""

    kept: list[int] = field(default_factory=list)
    continued: list[int] = field(default_factory=list)
    run: list[int] = field(default_factory=list)

    @property
    def to_run(self) -> list[int]:
        return sorted(self.continued + self.run)

    def line(self) -> str:
        return (f"{len(self.kept)} kept, {len(self.continued)} continued from their checkpoint, "
                f"{len(self.run)} run")


def flat_config(cfg: Any) -> dict[str, Any]:
    """A typed config as the plan records it: dotted keys, plain values."""
    return flatten(dataclasses.asdict(cfg))


def make_plan(command: str, arguments: Sequence[str],
              jobs: Sequence[tuple[Sequence[str], Any]], sampling: bool = False) -> Plan:
    """The plan of a sweep's jobs (their overrides and typed configs), numbered in order."""
    return Plan(command=command, arguments=list(arguments), sampling=sampling,
                jobs=[PlannedJob(number, list(overrides), flat_config(cfg))
                      for number, (overrides, cfg) in enumerate(jobs)] if not sampling else [])


def resume_work(sweep_dir: Path, plan: Plan, jobs: Sequence[tuple[Sequence[str], TrainConfig]],
                allow_changes: bool, on_change: str = "refuse",
                numbers: Sequence[int] | None = None) -> Work:
    """What to do with each planned job (`numbers`: only those; default all); UserError (one
    line) when the plan cannot be continued: a job runs, or (on_change="refuse", a sweep) the
    jobs are not those today's configs make or a config changed. on_change="run" (a
    reproduction) runs a changed job anew instead."""
    if on_change == "refuse" and len(jobs) != len(plan.jobs):
        raise UserError(f"resume={sweep_dir}: today's configs make {len(jobs)} jobs of its "
                        f"command line, its plan lists {len(plan.jobs)}; run the sweep anew")
    work = Work()
    for number in range(len(jobs)) if numbers is None else numbers:
        overrides, cfg = jobs[number]
        change = _change(plan.job(number), overrides, cfg, plan.with_configs)
        if change and on_change == "run":
            work.run.append(number)
            continue
        if change and not allow_changes:
            raise UserError(f"resume={sweep_dir}: {change}; add resume_changed=true to continue "
                            "it with today's configs")
        _sort(sweep_dir / str(number), number, work)
    return work


def _change(planned: PlannedJob | None, overrides: Sequence[str], cfg: TrainConfig,
            with_configs: bool) -> str | None:
    """How a job differs from its plan (None: it does not), in a few words."""
    if planned is None:
        return "a job its plan does not list"
    if list(overrides) != planned.overrides:
        return (f"job {planned.number} is now {' '.join(overrides)!r}, planned as "
                f"{' '.join(planned.overrides)!r}")
    if not with_configs:
        return "its plan, written by an older cvlab, records no configs to compare with today's"
    now = flat_config(cfg)
    for key, value in now.items():
        if key.startswith(RESUMABLE_CHANGES) or key == "resume_changed":
            continue
        before = planned.config.get(key, "<not set>")
        if before != value and not (_number(before) and _number(value)
                                    and float(before) == float(value)):
            return (f"job {planned.number}'s config changed since it was planned: "
                    f"{key}={value!r} (planned {before!r})")
    return None


def _sort(job_dir: Path, number: int, work: Work) -> None:
    """Put the job into kept, continued or run by what its folder holds."""
    folder = RunFolder(job_dir)
    try:
        summary = folder.summary() if job_dir.is_dir() else None
    except RecordError:
        summary = None
    if summary is not None and summary.status in KEPT_STATUSES:
        work.kept.append(number)
    elif summary is not None and summary.status == "running":
        raise UserError(f"job {number} of this sweep is still running (process {summary.pid} "
                        f"on {summary.host}); wait for it or stop it, then resume")
    elif summary is not None and summary.status != "failed" and folder.has(CHECKPOINT_NAME):
        work.continued.append(number)
    else:
        work.run.append(number)


def set_aside(sweep_dir: Path, numbers: Sequence[int]) -> list[Path]:
    """Move the folders of jobs that run anew under <sweep>/.attempts/<job>-<time>/ (their
    earlier attempt is kept, out of the way); the new places."""
    moved = []
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    for number in numbers:
        job_dir = sweep_dir / str(number)
        if job_dir.exists():
            target = sweep_dir / ATTEMPTS / f"{number}-{stamp}"
            target.parent.mkdir(exist_ok=True)
            job_dir.rename(target)
            moved.append(target)
    return moved


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def stop_jobs(sweep_dir: Path, timeout_s: float = 30.0) -> list[int]:
    """Stop the sweep's jobs still running on this host (SIGTERM: each records itself
    `interrupted` with its checkpoint intact), waiting up to `timeout_s` for them to end
    (then SIGKILL); the numbers of the jobs stopped. Jobs running on other hosts (a cluster's
    nodes) are left to run: their own records say how they end."""
    import os
    import signal
    import time

    from cvlab.records.folders import job_dirs
    from cvlab.records.processes import host_name, process_alive

    running = {}
    for job in job_dirs(sweep_dir):
        try:
            summary = RunFolder(job).summary()
        except RecordError:
            continue
        if summary is not None and summary.status == "running" and summary.host == host_name() \
                and isinstance(summary.pid, int) and summary.pid != os.getpid():
            running[int(job.name)] = summary.pid
    for pid in running.values():
        with _ignored_lookup():
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(process_alive(pid, host_name()) for pid in running.values()) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in running.values():
        with _ignored_lookup():
            os.kill(pid, signal.SIGKILL)
    return sorted(running)


def _ignored_lookup() -> contextlib.AbstractContextManager:
    return contextlib.suppress(ProcessLookupError, PermissionError)
