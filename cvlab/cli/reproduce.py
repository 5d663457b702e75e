"""`cvlab reproduce` on the command line: the reproduction prepared (cvlab.reproduce.run), its
runs launched as one sweep of `cvlab train` jobs into the reproduction folder (the plan
sweeper, on the launcher asked for), then every item measured and the report written, also
after an interruption (the unfinished items not_run).

With impl=<folder> (a student's code), the runs go to the launcher's worker processes only
(launcher=basic is refused) and the measures reach their code through a worker of its own
(cvlab.impl): this process never imports it.

Exit code: 0 when every item that ran held, 1 when any did not (the last lines list them), 2
on bad input, 130 / 143 after SIGINT / SIGTERM (the report is written all the same).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cvlab.cli.resume import hydra_quote, override_key
from cvlab.cli.words import fail, overrides_of
from cvlab.errors import UserError
from cvlab.reproduce.run import Setup

LAUNCH_KEYS = ("hydra.launcher.",)  # settings that go with the runs' launcher


def launch_reproduction(args: list[str]) -> int:
    """Prepare, run and conclude a reproduction; the exit code."""
    from cvlab.config.compose import compose_plan
    from cvlab.reproduce.run import prepare, write_setup
    from cvlab.run.sweep import set_aside
    from cvlab.train.signals import raise_if_interrupted

    started = time.perf_counter()
    overrides = overrides_of(args)
    launcher_settings = [o for o in overrides if override_key(o).startswith(LAUNCH_KEYS)]
    own = [o for o in overrides if o not in launcher_settings]
    try:
        composed = compose_plan("reproduce", own, multirun=False)
        cfg = composed.jobs[0][1]
        launcher = str(composed.base.hydra.runtime.choices.get("launcher", "joblib"))
        launcher_settings += _isolation(cfg.impl, launcher, launcher_settings)
        setup = prepare(cfg)
        _preflight(setup)
        write_setup(setup)
        set_aside(setup.folder, setup.work.run)
    except UserError as err:
        raise_if_interrupted()  # a signal that Hydra turned into a config error
        return fail(f"cvlab reproduce: {err}")
    except OSError as err:  # an outputs root that is a file, read-only, or full
        return fail(f"cvlab reproduce: cannot create the reproduction folder: {err}", 1)
    print(f"reproduce: {setup.profile} profile, {len(setup.items)} items; runs in "
          f"{setup.folder}: {setup.work.line()}", flush=True)
    return _run_and_conclude(setup, [f"launcher={launcher}", *launcher_settings], started)


def _isolation(impl: str | None, launcher: str, settings: list[str]) -> list[str]:
    """impl=: the runs that train the student's classes must run in worker processes, never in
    this one: launcher=basic is refused; joblib gets two workers at least (with one, joblib
    runs its jobs in the calling process)."""
    if impl is None:
        return []
    if launcher == "basic":
        raise UserError("launcher=basic runs the jobs in this process; with impl= your code "
                        "runs only in worker processes: use launcher=joblib (the default), "
                        "submitit_local or submitit_slurm")
    given = any(override_key(o) == "hydra.launcher.n_jobs" for o in settings)
    if launcher == "joblib" and not given and (os.cpu_count() or 1) < 2:
        return ["hydra.launcher.n_jobs=2"]
    return []


def _preflight(setup: Setup) -> None:
    from cvlab.run.train import preflight

    for number in setup.work.to_run:
        preflight(setup.configs[number])


def _run_and_conclude(setup: Setup, launch: list[str], started: float) -> int:
    from cvlab.cli.app import run_jobs
    from cvlab.cli.prepare import plan_sweeper
    from cvlab.records.lock import acquire, release
    from cvlab.reproduce.run import conclude
    from cvlab.run.sweep import stop_sweep
    from cvlab.train.signals import Interrupted, signals_as_interrupts

    interrupted, code = None, 0
    try:
        acquire(setup.folder)
    except UserError as err:
        return fail(f"cvlab reproduce: {err}")
    with signals_as_interrupts():
        try:
            try:
                if setup.work.to_run:
                    run_jobs("train", [*launch,
                                       f"hydra.sweep.dir={hydra_quote(str(setup.folder))}",
                                       "hydra.mode=MULTIRUN",
                                       *plan_sweeper(setup.folder, setup.work.to_run)],
                             setup.folder, multirun=True)
            except Interrupted as err:
                stop_sweep(setup.folder)
                interrupted, code = f"interrupted by {err}", err.exit_code
            try:
                reproduction = conclude(setup, time.perf_counter() - started, interrupted)
            except Interrupted as err:  # while measuring: conclude wrote the report first
                interrupted, code = f"interrupted by {err}", err.exit_code
        except OSError as err:  # a full disk, a folder made read-only meanwhile
            return fail(f"cvlab reproduce: cannot write into {setup.folder}: {err}", 1)
        finally:
            release(setup.folder)
    if interrupted:
        return fail(f"cvlab reproduce: {interrupted}; the report, with the unfinished items not "
                    f"run, is in {setup.folder / 'report.html'}", code)
    return _verdict(reproduction, setup.folder)


def _verdict(reproduction: dict, folder: Path) -> int:
    """Print the counts (and the items not held); 0 when every item that ran held."""
    counts = reproduction["counts"]
    failed = [item for item in reproduction["items"] if item["verdict"] == "not_held"]
    for item in failed:
        whose = f" [{item['implementation']}]" if "implementation" in item else ""
        print(f"not held: {item['id']}{whose}: {item['detail']}", flush=True)
    print(f"reproduce: {counts['held']} held, {counts['not_held']} not held, "
          f"{counts['not_run']} not run; report in {folder / 'report.html'}", flush=True)
    return 1 if failed else 0
