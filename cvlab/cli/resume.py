"""`resume=`: what the command line becomes when it continues a run or a sweep.

    cvlab train resume=<run folder>|latest [key=value ...]     a single run, in a new folder
    cvlab train resume=<sweep folder>|latest_sweep             a sweep, in its own folder

A run resumes with the overrides it was started with, then the new ones; the run core checks
what may change. A run started with an outputs_root is continued under it (the root its folder
sits in), unless the new overrides give one. A sweep (a folder with sweep_plan.json) resumes
from its plan: its jobs are composed again from today's configs and checked against the
plan, then those still to do are launched into their own folders (cvlab.run.sweep says
which); an Optuna sweep continues its study (the sweep folder's optuna.db) in a new sweep
folder.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cvlab.errors import UserError
from cvlab.records.files import CHECKPOINT_NAME, SWEEP_PLAN, RecordError
from cvlab.records.plan import Plan, read_plan

LATEST, LATEST_SWEEP = "latest", "latest_sweep"
# what the command line of a resumed sweep may add: how and where its jobs are launched
SWEEP_RESUME_KEYS = ("resume", "resume_changed", "launcher", "hydra/launcher", "outputs_root")


def override_key(override: str) -> str:
    """The key an override sets (`model` for model=cnn, `a.b` for ++a.b=1)."""
    return override.lstrip("+~").partition("=")[0]


def override_value(override: str) -> str:
    return override.partition("=")[2].strip().strip("'\"")


def hydra_quote(value: str) -> str:
    """`value` as a quoted Hydra override value."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resume_target(overrides: list[str]) -> Path | None:
    """The folder `resume=` names (None without one): a run with a checkpoint, a sweep with a
    plan; `latest` is the newest run with a checkpoint, `latest_sweep` the newest sweep."""
    values = [override_value(o) for o in overrides if override_key(o) == "resume"]
    if not values or values[-1] in ("", "null", "None"):
        return None
    value = values[-1]
    roots = [override_value(o) for o in overrides if override_key(o) == "outputs_root"]
    root = Path(roots[-1] if roots else "outputs")
    if value in (LATEST, LATEST_SWEEP):
        found = _latest(root, sweep=value == LATEST_SWEEP)
        print(f"resume={value}: {found}", flush=True)
        return found
    folder = Path(value).expanduser()
    if not (folder / CHECKPOINT_NAME).is_file() and not (folder / SWEEP_PLAN).is_file():
        raise UserError(f"resume={value}: neither a run with a {CHECKPOINT_NAME} nor a sweep "
                        f"with a {SWEEP_PLAN}; pass such a folder, resume=latest or "
                        "resume=latest_sweep")
    return folder.resolve()


def _latest(root: Path, sweep: bool) -> Path:
    from cvlab.records.folders import latest_run_with, run_folders

    if sweep:
        found = next((folder for folder, is_sweep in reversed(run_folders(root))
                      if is_sweep and (folder / SWEEP_PLAN).is_file()), None)
    else:
        found = latest_run_with(root, CHECKPOINT_NAME)
    if found is None:
        what = f"sweep with a {SWEEP_PLAN}" if sweep else f"run with a {CHECKPOINT_NAME}"
        raise UserError(f"resume={LATEST_SWEEP if sweep else LATEST} found no {what} under "
                        f"{root / 'train'}; pass resume=<folder>")
    return found.resolve()


def run_overrides(folder: Path, overrides: list[str]) -> list[str]:
    """A resumed run's overrides: those it was started with (its summary's), then the new
    ones (which win), then resume=<its folder>. Its outputs_root is that of the run it
    continues (resumed_outputs_root) unless the new ones give one."""
    from cvlab.cli.words import rename_keys
    from cvlab.records.reader import RunFolder

    try:
        summary = RunFolder(folder).summary()
    except RecordError as err:
        raise UserError(f"resume={folder}: {err}") from None
    mine = [o for o in overrides if override_key(o) != "resume"]
    keys = {override_key(o) for o in mine} | {"resume", "hydra.mode", "hydra.run.dir",
                                             "hydra.sweep.dir", "outputs_root"}
    stored = summary.overrides if summary is not None else []
    kept = rename_keys("train", [o for o in stored if override_key(o) not in keys])
    given = any(override_key(o) == "outputs_root" for o in mine)
    root = [] if given else resumed_outputs_root(folder, stored)
    return [*kept, *root, *mine, f"resume={hydra_quote(str(folder))}", "hydra.mode=RUN"]


def resumed_outputs_root(folder: Path, stored: list[str]) -> list[str]:
    """The outputs_root override a resumed run takes from the run it continues (`stored`,
    its overrides): none when that run had the default (outputs/ of the working folder, as
    for any run); else the root its folder sits in, absolute, so that the new run goes next
    to it wherever the command runs (a relative outputs_root=X named X in another folder);
    the stored value as it was given when the folder is not where cvlab puts runs."""
    given = [override_value(o) for o in stored if override_key(o) == "outputs_root"]
    if not given:
        return []
    root = outputs_root_of(folder)
    return [f"outputs_root={hydra_quote(str(root) if root is not None else given[-1])}"]


def outputs_root_of(folder: Path, command: str = "train") -> Path | None:
    """The outputs root of a run folder made by cvlab: `<root>/<command>/<date>/<time>` or a
    sweep job's `<root>/<command>/multirun/<date>/<time>/<job>`; None for a folder elsewhere
    (hydra.run.dir=...)."""
    parts = Path(folder).parts
    if parts and parts[-1].isdigit() and parts[-5:-3] == (command, "multirun"):
        root, date = parts[:-5], parts[-3]
    elif parts[-3:-2] == (command,):
        root, date = parts[:-3], parts[-2]
    else:
        return None
    try:
        datetime.date.fromisoformat(date)
    except ValueError:
        return None
    return Path(*root) if root else None


def sweep_overrides(folder: Path, overrides: list[str]) -> tuple[list[str], list[str]]:
    """(the plan's command line, the new overrides) of a resumed sweep; UserError when the
    new ones would change its jobs rather than how they are launched."""
    for override in overrides:
        key = override_key(override)
        if key not in SWEEP_RESUME_KEYS and not key.startswith("hydra.launcher."):
            raise UserError(f"{override}: a resumed sweep runs the jobs of its plan; only how "
                            "they are launched may change (launcher=..., hydra.launcher.*, "
                            "resume_changed=true); to change the jobs, start a new sweep")
    return plan_of(folder).arguments, [o for o in overrides if override_key(o) != "resume"]


def plan_of(folder: Path) -> Plan:
    """The plan of a sweep folder; UserError when it has none or it cannot be read."""
    try:
        plan = read_plan(folder)
    except RecordError as err:
        raise UserError(f"resume={folder}: {err}") from None
    if plan is None:
        raise UserError(f"resume={folder}: no {SWEEP_PLAN} there")
    return plan
