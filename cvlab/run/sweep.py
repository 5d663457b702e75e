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
from cvlab.records.sweeps import close_interrupted_jobs
from cvlab.run.resume import first_change
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
    change = first_change(flat_config(cfg), planned.config, missing_differs=True)
    if change is None:
        return None
    key, value, before = change
    return (f"job {planned.number}'s config changed since it was planned: {key}={value!r} "
            f"(planned {before!r})")


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


# Processes a launcher keeps for its own bookkeeping (the resource trackers of multiprocessing
# and loky): they end by themselves with this process, and releasing what they track is theirs.
SERVICE_PROCESSES = ("resource_tracker", "semaphore_tracker")


def stop_sweep(sweep_dir: Path, timeout_s: float = 30.0, grace_s: float = 5.0) -> list[int]:
    """Stop what an interrupted sweep started on this host, then close its records
    (close_interrupted_jobs); the numbers of the jobs closed as interrupted.

    Every process this one started gets SIGTERM: a running job (its summary names its
    process) records itself `interrupted` with its checkpoint intact, a launcher's worker or
    controller ends or passes it on to its job. A process that is no running job (a job still
    starting has nothing to lose yet) and outlives `grace_s` gets SIGKILL, and so does
    anything still there after `timeout_s`. Processes are followed by pid once seen, so a job
    whose controller was killed is still waited for. Jobs on other hosts (a cluster's nodes)
    are left to run: their own records say how they end."""
    import signal
    import time

    from cvlab.records.processes import command_line, descendants, host_name, process_alive

    seen: set[int] = set()
    told: dict[int, float] = {}  # pid -> when it got SIGTERM
    told_as_job: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        now = time.monotonic()
        seen |= {pid for pid in descendants()
                 if not any(name in command_line(pid) for name in SERVICE_PROCESSES)}
        jobs = set(_running_here(sweep_dir).values())
        alive = [pid for pid in seen | jobs if process_alive(pid, host_name())]
        if not alive:
            break
        for pid in alive:
            if pid not in told or (pid in jobs and pid not in told_as_job):
                _signal(pid, signal.SIGTERM)  # a job started since: its own handler now
                told.setdefault(pid, now)
                told_as_job |= {pid} & jobs
            elif (pid not in jobs and now - told[pid] > grace_s) or now > deadline:
                _signal(pid, signal.SIGKILL)
        if now > deadline + 1.0:
            break
        time.sleep(0.1)
    return close_interrupted_jobs(sweep_dir)


def _running_here(sweep_dir: Path) -> dict[int, int]:
    """Job number -> process of the sweep's jobs whose summary says they run on this host."""
    import os

    from cvlab.records.folders import job_dirs
    from cvlab.records.processes import host_name

    running = {}
    for job in job_dirs(sweep_dir):
        try:
            summary = RunFolder(job).summary()
        except RecordError:
            continue
        if summary is not None and summary.status == "running" and summary.host == host_name() \
                and isinstance(summary.pid, int) and summary.pid != os.getpid():
            running[int(job.name)] = summary.pid
    return running


def _signal(pid: int, signum: int) -> None:
    import os

    with _ignored_lookup():
        os.kill(pid, signum)


def _ignored_lookup() -> contextlib.AbstractContextManager:
    return contextlib.suppress(ProcessLookupError, PermissionError)
