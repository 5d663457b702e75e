"""A plan: every run a piece of work is made of, written into its folder before the first one
starts (sweep_plan.json), so that the work can be listed, continued and checked later.

    write_plan(sweep_dir, Plan(command="train", arguments=[...], jobs=[PlannedJob(0, [...],
               config), ...]))
    plan = read_plan(sweep_dir)          # None when the folder has none

A sweep is a plan over one config with the sweep's overrides; a reproduction is a plan over
many experiment configs. Each planned job records its number (its folder's name), the
overrides that make it, and its resolved config (flattened: dotted key -> value), so that a
later run of the plan can tell which jobs are done and whether the configs changed since.
A plan written for a sampling sweeper (Optuna) lists no jobs: the sweeper draws them as it runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvlab.records.files import SWEEP_PLAN, RecordError, atomic_write_text, to_json

PLAN_FORMAT = 2  # format 1 (a list of {job, overrides}) recorded no configs


@dataclass
class PlannedJob:
    number: int  # the job's folder is <sweep folder>/<number>
    overrides: list[str]
    config: dict[str, Any] = field(default_factory=dict)  # flattened resolved config


@dataclass
class Plan:
    command: str
    arguments: list[str]  # the command line's overrides the plan was made from
    jobs: list[PlannedJob] = field(default_factory=list)
    sampling: bool = False  # a sampling sweeper draws the jobs as it runs (none listed)
    with_configs: bool = True  # False: a format-1 plan (overrides only)

    def job(self, number: int) -> PlannedJob | None:
        return next((job for job in self.jobs if job.number == number), None)


def write_plan(folder: Path, plan: Plan) -> None:
    """Write the plan (atomically) into `folder` as sweep_plan.json."""
    document = {"format": PLAN_FORMAT, "command": plan.command,
                "arguments": list(plan.arguments), "sampling": plan.sampling,
                "jobs": [{"job": job.number, "overrides": list(job.overrides),
                          "config": job.config} for job in plan.jobs]}
    atomic_write_text(Path(folder) / SWEEP_PLAN, to_json(document))


def read_plan(folder: Path) -> Plan | None:
    """The plan in `folder` (None when there is none); RecordError when it cannot be read."""
    path = Path(folder) / SWEEP_PLAN
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as err:
        raise RecordError(f"{path} cannot be read ({type(err).__name__}: {err})") from None
    try:
        if isinstance(document, list):  # format 1
            return Plan(command="train", arguments=[], with_configs=False,
                        jobs=[PlannedJob(int(entry["job"]), [str(o) for o in entry["overrides"]])
                              for entry in document])
        if document.get("format") != PLAN_FORMAT:
            raise ValueError(f"format {document.get('format')!r}, this cvlab reads {PLAN_FORMAT}")
        return Plan(command=str(document["command"]),
                    arguments=[str(a) for a in document["arguments"]],
                    sampling=bool(document.get("sampling", False)),
                    jobs=[PlannedJob(int(entry["job"]), [str(o) for o in entry["overrides"]],
                                     dict(entry.get("config") or {}))
                          for entry in document["jobs"]])
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise RecordError(f"{path} is not a cvlab plan ({err})") from None
