"""The `cvlab` command: `cvlab <command> [action] [group=option ...] [key=value ...] [-m]`.

This package (with the config layer, cvlab.config) is the only code that knows about Hydra.
Before Hydra runs anything it composes the command's config, checks every job of a sweep
(cvlab.config.compose) and what each needs of the machine, creates the run folder exclusively
(cvlab.cli.prepare), then hands Hydra the run or multirun (cvlab.cli.app), which calls the
command's `main(cfg, run_dir, overrides)` with a typed dataclass and the run folder as a Path.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from cvlab.cli.words import (
    COMMANDS,
    COMPLETION_FLAGS,
    HELP_FLAGS,
    INFO_FLAGS,
    MULTIRUN_FLAGS,
    fail,
    overrides_of,
    usage,
)
from cvlab.errors import UserError

log = logging.getLogger("cvlab")


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
        from cvlab.cli.app import show_info

        return show_info(name, rest)
    from cvlab.train.signals import Interrupted, signals_as_interrupts

    try:
        with signals_as_interrupts():  # a signal while composing and checking: one line too
            return launch(name, rest)
    except Interrupted as err:
        return fail(f"cvlab {name}: interrupted ({err}) before any job started", err.exit_code)


def normalize_arguments(name: str, args: list[str]) -> list[str]:
    """-m anywhere moves to the front; an action word becomes action=<word>; former key names
    are renamed (with a notice)."""
    from cvlab.cli.words import listed_values, rename_keys

    command = COMMANDS[name]
    flags = [a for a in args if a in MULTIRUN_FLAGS]
    args = [a for a in args if a not in MULTIRUN_FLAGS]
    if args and "=" not in args[0] and not args[0].startswith("-"):
        word = args.pop(0)
        if word not in command.actions:
            allowed = ", ".join(command.actions) if command.actions else "none"
            raise UserError(f"unknown action {word!r}; valid actions: {allowed}")
        args.insert(0, f"action={word}")
    return [*flags[:1], *listed_values(name, rename_keys(name, args))]


def launch(name: str, args: list[str]) -> int:
    """Check everything, create the run folder, run through Hydra; SIGINT/SIGTERM recorded."""
    if name == "reproduce":
        from cvlab.cli.reproduce import launch_reproduction

        return launch_reproduction(args)
    from cvlab.cli.app import run_jobs
    from cvlab.cli.prepare import finish_interrupted, prepare
    from cvlab.records.lock import release
    from cvlab.train.signals import Interrupted, raise_if_interrupted, signals_as_interrupts

    try:
        launch = prepare(name, args)
    except UserError as err:
        raise_if_interrupted()  # a signal that Hydra turned into a config error
        return fail(f"cvlab {name}: {err}")
    except OSError as err:
        return fail(f"cvlab {name}: cannot create the run folder: {err}", 1)
    with signals_as_interrupts():
        try:
            code = run_jobs(name, launch.overrides, launch.run_dir, launch.multirun)
            raise_if_interrupted()  # a signal whose exception a finalizer swallowed
            return code
        except Interrupted as err:
            return finish_interrupted(name, launch.run_dir, err)
        finally:
            if launch.multirun and launch.run_dir is not None:
                release(launch.run_dir)


def _guarded(name: str, work: Any) -> int:
    try:
        return int(work() or 0)
    except UserError as err:
        return fail(f"cvlab {name}: {err}")
