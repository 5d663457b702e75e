"""The `cvlab` command: `cvlab <command> [action] [group=option ...] [key=value ...] [-m]`.

This package (with the config layer, cvlab.config) is the only code that knows about Hydra.
Before Hydra runs anything it composes the command's config, checks every job of a sweep
(cvlab.config.compose), creates the run folder exclusively (cvlab.cli.prepare), then hands
Hydra the run or multirun and calls the command's `main(cfg, run_dir)` with a typed dataclass.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvlab.errors import UserError

log = logging.getLogger("cvlab")


@dataclass(frozen=True)
class Command:
    summary: str
    actions: tuple[str, ...] = ()
    run_folder: bool = True  # False: the command produces no run (nothing to keep)


COMMANDS: dict[str, Command] = {
    "train": Command("train a model, an experiment or a sweep (-m / sweep=...) from configs"),
    "gradcheck": Command("check analytic gradients against numeric ones (layer=<name>|all)"),
    "plot": Command("draw figures, a table and report.md into a run or sweep folder",
                    run_folder=False),
    "eval": Command("score a run's saved model again on its val or test split (eval.json)",
                    run_folder=False),
    "data": Command("show what datasets are found (info) or download one (fetch)",
                    ("info", "fetch"), run_folder=False),
    "bench": Command("benchmark layers (layers) or training speed (train)", ("layers", "train")),
}

HELP_FLAGS = {"--help", "-h"}
# Hydra flags that print information instead of running, and flags that take a value.
INFO_FLAGS = {"--hydra-help", "--cfg", "-c", "--info", "-i", "--resolve"}
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
               "--config-dir", "-cd", "--info", "-i", "--experimental-rerun"}
MULTIRUN_FLAGS = ("-m", "--multirun")
COMPLETION_FLAGS = ("-sc", "--shell-completion")

_state: dict[str, Any] = {}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: cvlab <command> [action] [group=option ...] [key=value ...] [-m]", "",
             "commands:"]
    for name, command in COMMANDS.items():
        actions = f" [{'|'.join(command.actions)}]" if command.actions else ""
        lines.append(f"  {name:<{width}}  {command.summary}{actions}")
    lines += ["", "`cvlab <command> --help` shows the command's config groups and every field; "
              "`cvlab --version`;", "shell completion: eval \"$(cvlab -sc install=bash)\" "
              "(or zsh; fish: cvlab -sc install=fish | source)."]
    return "\n".join(lines)


def fail(message: str, code: int = 2) -> int:
    print(message if message.startswith("cvlab") else f"cvlab: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    # A log file on a full disk must not print tracebacks: the failure is reported once.
    logging.raiseExceptions = False
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in COMPLETION_FLAGS or a.startswith("--shell-completion=") for a in argv):
        from cvlab.cli.shell import completion

        return completion(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("--version", "-V"):
        from cvlab import __version__

        print(f"cvlab {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        return fail(f"unknown command {name!r}; valid commands: {', '.join(COMMANDS)} "
                    "(see cvlab --help)")
    try:
        rest = normalize_arguments(name, rest)
    except UserError as err:
        return fail(f"cvlab {name}: {err}")
    if HELP_FLAGS.intersection(rest):
        from cvlab.cli.shell import command_help

        return _guarded(name, lambda: command_help(name, overrides_of(rest)))
    if INFO_FLAGS.intersection(rest):
        return run_hydra(name, rest)
    return launch(name, rest)


def normalize_arguments(name: str, args: list[str]) -> list[str]:
    """-m anywhere moves to the front; an action word becomes action=<word>; former key names
    are renamed (with a notice)."""
    from cvlab.cli.prepare import rename_keys

    command = COMMANDS[name]
    flags = [a for a in args if a in MULTIRUN_FLAGS]
    args = [a for a in args if a not in MULTIRUN_FLAGS]
    if args and "=" not in args[0] and not args[0].startswith("-"):
        word = args.pop(0)
        if word not in command.actions:
            allowed = ", ".join(command.actions) if command.actions else "none"
            raise UserError(f"unknown action {word!r}; valid actions: {allowed}")
        args.insert(0, f"action={word}")
    return [*flags[:1], *rename_keys(name, args)]


def override_positions(args: list[str]) -> list[int]:
    """Indices of the key=value overrides among the arguments (flags and their values left out)."""
    positions, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in VALUE_FLAGS
        else:
            positions.append(i)
    return positions


def overrides_of(args: list[str]) -> list[str]:
    return [args[i] for i in override_positions(args)]


def launch(name: str, args: list[str]) -> int:
    """Check everything, create the run folder, run through Hydra; SIGINT/SIGTERM recorded."""
    from cvlab.cli.prepare import finish_interrupted, prepare
    from cvlab.train.signals import Interrupted, raise_if_interrupted, signals_as_interrupts

    try:
        args, run_dir = prepare(name, args)
    except UserError as err:
        return fail(f"cvlab {name}: {err}")
    except OSError as err:
        return fail(f"cvlab {name}: cannot create the run folder: {err}", 1)
    with signals_as_interrupts():
        try:
            code = run_hydra(name, args, run_dir)
            raise_if_interrupted()  # a signal whose exception a finalizer swallowed
            return code
        except Interrupted as err:
            return finish_interrupted(name, run_dir, err)


def _guarded(name: str, work: Any) -> int:
    try:
        return int(work() or 0)
    except UserError as err:
        return fail(f"cvlab {name}: {err}")


def run_hydra(name: str, args: list[str], run_dir: Path | None = None) -> int:
    """Hand `cvlab <name> args...` to Hydra; the exit code."""
    import hydra
    from hydra.errors import HydraException

    from cvlab.config.compose import composition_message
    from cvlab.config.store import register_schemas
    from cvlab.paths import config_dir

    register_schemas()
    _state.clear()

    @hydra.main(config_path=str(config_dir()), config_name=name, version_base="1.3")
    def task(cfg: Any) -> float | None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        code, objective = execute(name, cfg, Path(hydra_cfg.runtime.output_dir),
                                  list(hydra_cfg.overrides.task),
                                  hydra_cfg.mode == RunMode.MULTIRUN)
        _state["code"] = code
        return objective

    saved, saved_env = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [f"cvlab {name}", *args]
    # Hydra's errors reach us (instead of Hydra printing a stack trace): one line each.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        task()
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else fail(exit_.code, 1)
    except OSError as err:  # Hydra writing its records into a full or read-only folder
        where = f"{err.filename}" if err.filename else f"into {run_dir}"
        return fail(f"cvlab {name}: cannot write {where}: {err.strerror or err}", 1)
    except HydraException as err:
        return fail(f"cvlab {name}: {composition_message(err, name)}")
    except Exception as err:  # a launcher or sweeper that failed (sbatch refused a job, ...)
        from cvlab.config.compose import one_line

        return fail(f"cvlab {name}: the sweep could not run: {type(err).__name__}: "
                    f"{one_line(err)}", 1)
    finally:
        sys.argv = saved
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env
    if "sweep_failed" in _state:
        return 1 if _state["sweep_failed"] else 0
    return int(_state.get("code", 0))


def execute(name: str, cfg: Any, run_dir: Path, overrides: list[str],
            multirun: bool) -> tuple[int, float | None]:
    """Type the config, run the command's main(cfg, run_dir) and record how it ended.

    Returns the exit code and the run's objective (for a sweeper that optimizes)."""
    from omegaconf import OmegaConf

    from cvlab.config.typed import typed
    from cvlab.records.files import atomic_write_text
    from cvlab.train.signals import Interrupted, signals_as_interrupts

    if multirun:
        _console_warnings_only()  # a sweep job says one line (below); its log has the rest
    try:
        with signals_as_interrupts():
            config = typed(name, cfg)
            if COMMANDS[name].run_folder:  # every field with its effective value
                atomic_write_text(run_dir / "config.yaml",
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
        with contextlib.suppress(OSError), (run_dir / "error.log").open("a") as f:
            f.write(trace)
        _close(name, run_dir, status="failed", error=f"{type(err).__name__}: {err}",
               overrides=overrides)
        return fail(f"cvlab {name}: {type(err).__name__}: {err} "
                    f"(traceback in {run_dir / 'error.log'})", 1), None
    from cvlab.records.summary import read_summary

    summary = read_summary(run_dir) if COMMANDS[name].run_folder else None
    if multirun and summary is not None:
        _say_job_done(name, run_dir, summary)
    return int(code or 0), _objective(name, config, summary)


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
    from cvlab.records.summary import read_summary, write_summary

    if not COMMANDS[name].run_folder:
        return
    summary = read_summary(run_dir)
    if summary is not None and summary.status != "running" and "status" in fields:
        fields.pop("status")
        fields.pop("error", None)
    with contextlib.suppress(OSError, ValueError):
        write_summary(run_dir, **fields)


class SweepSummaryCallback:
    """Hydra callback: when a multirun ends, write the sweep's summary of all jobs."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from cvlab.cli.prepare import print_sweep_table
        from cvlab.records.sweeps import summarize_sweep

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = summarize_sweep(sweep_dir)
        _state["sweep_failed"] = any(row["status"] == "failed" for row in rows)
        print_sweep_table(sweep_dir, rows)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from cvlab.layers.fast import announce_fallback

        announce_fallback(log.warning)  # once for the sweep: its workers inherit the silence

    # Hydra calls these too; nothing to do.
    def on_run_start(self, config: Any, **kwargs: Any) -> None: ...
    def on_run_end(self, config: Any, **kwargs: Any) -> None: ...
    def on_job_start(self, config: Any, **kwargs: Any) -> None: ...
    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None: ...
    def on_compose_config(self, config: Any, config_name: Any, overrides: Any) -> None: ...
