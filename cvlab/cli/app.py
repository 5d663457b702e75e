"""Running a command's jobs through Hydra: one run, or the jobs of a sweep on the launcher the
config names, each job typed, checked and recorded in its run folder.

    code = run_jobs("train", launch)        # after cvlab.cli.prepare made the run folder

Hydra's run and multirun are called directly (not through `hydra.main`), so that every job's
result comes back as a value: a single run returns its exit code; a sweep's jobs return their
objective (what a sampling sweeper optimizes) and the sweep's exit code is read from its
records (the sweep summary), written when the sweep ends. A single run's folder is the Path
cvlab.cli.prepare created; a sweep job's folder is the one the launcher gives it (the sweep
folder and the job's number).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from cvlab.errors import UserError

log = logging.getLogger("cvlab")


def hydra_app(name: str) -> Any:
    """A Hydra instance on cvlab's configs (schemas registered) for `cvlab <name>`."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path

    from cvlab.config.store import register_schemas
    from cvlab.paths import config_dir
    from hydra_plugins.cvlab_plan_sweeper import plan_sweeper

    register_schemas()
    plan_sweeper.register()
    return Hydra.create_main_hydra2(task_name=f"cvlab_{name}",
                                    config_search_path=create_config_search_path(str(config_dir())))


def run_jobs(name: str, overrides: list[str], run_dir: Path | None, multirun: bool) -> int:
    """Run `cvlab <name> overrides...` (one run in run_dir, or a sweep into it); exit code."""
    from hydra.core.global_hydra import GlobalHydra

    from cvlab.cli.words import fail
    from cvlab.config.compose import one_line

    GlobalHydra.instance().clear()
    saved_env = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra's errors reach us: one line each (below)
    try:
        hydra = hydra_app(name)
        if multirun:
            return _sweep(name, hydra, overrides, run_dir)
        job = _Job(name, run_dir, multirun=False)
        return int(hydra.run(config_name=name, task_function=job, overrides=overrides)
                   .return_value)
    except OSError as err:  # Hydra writing its records into a full or read-only folder
        where = f"{err.filename}" if err.filename else f"into {run_dir}"
        return fail(f"cvlab {name}: cannot write {where}: {err.strerror or err}", 1)
    except Exception as err:  # a launcher or sweeper that failed (sbatch refused a job, ...)
        from hydra.errors import HydraException

        from cvlab.config.compose import composition_message

        if isinstance(err, HydraException):
            return fail(f"cvlab {name}: {composition_message(err, name)}")
        return fail(f"cvlab {name}: the sweep could not run: {type(err).__name__}: "
                    f"{one_line(err)}", 1)
    finally:
        GlobalHydra.instance().clear()
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env


def _sweep(name: str, hydra: Any, overrides: list[str], sweep_dir: Path | None) -> int:
    """The sweep's jobs on its launcher; then its summary (written, and shown as a table).
    Exit 1 when a job failed."""
    from cvlab.cli.prepare import print_sweep_table
    from cvlab.layers.fast import announce_fallback
    from cvlab.records.sweeps import summarize_sweep

    announce_fallback(log.warning)  # once for the sweep: its workers inherit the silence
    hydra.multirun(config_name=name, task_function=_Job(name, None, multirun=True),
                   overrides=overrides)
    if sweep_dir is None or not sweep_dir.is_dir():
        return 0
    rows = summarize_sweep(sweep_dir)
    print_sweep_table(sweep_dir, rows)
    return 1 if any(row["status"] == "failed" for row in rows) else 0


class _Job:
    """Hydra's task function: one job of `cvlab <name>` (pickled to a sweep's workers)."""

    def __init__(self, name: str, run_dir: Path | None, multirun: bool) -> None:
        self.name, self.run_dir, self.multirun = name, run_dir, multirun

    def __call__(self, cfg: Any) -> int | float | None:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
        run_dir = self.run_dir or Path(hydra_cfg.runtime.output_dir)  # a sweep job's folder
        code, objective = execute(self.name, cfg, run_dir, list(hydra_cfg.overrides.task),
                                  self.multirun)
        return objective if self.multirun else code


def execute(name: str, cfg: Any, run_dir: Path, overrides: list[str],
            multirun: bool) -> tuple[int, float | None]:
    """Type the config, run the command's main(cfg, run_dir) and record how it ended.

    Returns the exit code and the run's objective (for a sweeper that optimizes)."""
    from omegaconf import OmegaConf

    from cvlab.cli.words import COMMANDS, fail
    from cvlab.config.typed import typed
    from cvlab.records.files import CONFIG_NAME, ERROR_LOG, atomic_write_text
    from cvlab.train.signals import Interrupted, signals_as_interrupts

    if multirun:
        _console_warnings_only()  # a sweep job says one line (below); its log has the rest
    try:
        with signals_as_interrupts():
            config = typed(name, cfg)
            if COMMANDS[name].run_folder:  # every field with its effective value
                atomic_write_text(run_dir / CONFIG_NAME,
                                  OmegaConf.to_yaml(OmegaConf.structured(config)))
            module = importlib.import_module(f"cvlab.commands.{name}")
            code = module.main(config, run_dir, overrides)
    except Interrupted as err:
        _close(name, run_dir, status="interrupted", error=f"interrupted by {err}",
               overrides=overrides)
        if multirun:
            raise  # the sweep stops; cvlab.cli.prepare.finish_interrupted records it
        return fail(f"cvlab {name}: interrupted ({err}); results so far are in {run_dir}",
                    err.exit_code), None
    except UserError as err:
        _close(name, run_dir, status="failed", error=str(err), overrides=overrides)
        return fail(f"cvlab {name}: {err}"), None
    except OSError as err:  # a full disk, a folder that cannot be written
        _close(name, run_dir, status="failed", error=str(err), overrides=overrides)
        return fail(f"cvlab {name}: {err} (run folder {run_dir})", 1), None
    except Exception as err:  # a bug, not a user mistake: keep the traceback in the run's log
        trace = "".join(traceback.format_exception(err))
        log.debug(trace)
        where = run_dir if COMMANDS[name].run_folder else None
        if where is not None:
            with contextlib.suppress(OSError), (where / ERROR_LOG).open("a") as f:
                f.write(trace)
        _close(name, run_dir, status="failed", error=f"{type(err).__name__}: {err}",
               overrides=overrides)
        kept = f" (traceback in {where / ERROR_LOG})" if where is not None else ""
        return fail(f"cvlab {name}: {type(err).__name__}: {err}{kept}", 1), None
    summary = _own_summary(name, run_dir)
    if multirun and summary is not None:
        _say_job_done(name, run_dir, summary)
    return int(code or 0), _objective(name, config, summary)


def _own_summary(name: str, run_dir: Path) -> Any:
    from cvlab.cli.words import COMMANDS
    from cvlab.records.summary import read_summary

    return read_summary(run_dir) if COMMANDS[name].run_folder else None


def _console_warnings_only() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and \
                not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)


def _say_job_done(name: str, run_dir: Path, summary: Any) -> None:
    from cvlab.run.train import done_line

    print(f"cvlab {name}: job {run_dir.name}: {done_line(summary, run_dir)}", flush=True)


def _objective(name: str, config: Any, summary: Any) -> float | None:
    """The run's `objective` metric (NaN when the run has none: a sweeper counts it failed)."""
    if name != "train":
        return None
    value = summary.metric(config.objective) if summary is not None else None
    return float("nan") if value is None else value


def _close(name: str, run_dir: Path, **fields: Any) -> None:
    """Record how a run ended in its summary.json, keeping a final status already written
    (an interrupted training run records itself); never raises. A command without a run
    folder runs in the current directory, which is not its to write."""
    from cvlab.cli.words import COMMANDS
    from cvlab.records.summary import read_summary, write_summary

    if not COMMANDS[name].run_folder:
        return
    summary = read_summary(run_dir)
    if summary is not None and summary.status != "running" and "status" in fields:
        fields.pop("status")
        fields.pop("error", None)
    with contextlib.suppress(OSError, ValueError):
        write_summary(run_dir, **fields, pid=None, host=None)


def show_info(name: str, args: list[str]) -> int:
    """Hydra's information flags (--cfg, --info, --hydra-help, ...) through `hydra.main`."""
    import hydra

    from cvlab.cli.words import fail
    from cvlab.config.store import register_schemas
    from cvlab.paths import config_dir

    register_schemas()

    @hydra.main(config_path=str(config_dir()), config_name=name, version_base="1.3")
    def task(cfg: Any) -> None:  # never called: Hydra prints and exits
        return None

    saved = sys.argv
    sys.argv = [f"cvlab {name}", *args]
    try:
        task()
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else fail(exit_.code, 1)
    finally:
        sys.argv = saved
    return 0
