"""The command line's words: its commands, the flags it knows, the one-line failure, and
which arguments are overrides. Every module of cvlab.cli takes them from here."""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass
from typing import Any

from cvlab.config.commands import BENCH_ACTIONS, DATA_ACTIONS


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
                    DATA_ACTIONS, run_folder=False),
    "bench": Command("benchmark layers (layers) or training speed (train)", BENCH_ACTIONS),
    "runs": Command("list the runs under outputs_root: where='key:value key:gt:0.3', "
                    "sort=-key, group_by=[keys], diff=[run,run]", run_folder=False),
    "reproduce": Command("run the course's experiments and check every claim of its notebooks "
                         "(part=..., profile=quick|full)"),
}

HELP_FLAGS = {"--help", "-h"}
# Hydra flags that print information instead of running, and flags that take a value.
INFO_FLAGS = {"--hydra-help", "--cfg", "-c", "--info", "-i", "--resolve"}
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
               "--config-dir", "-cd", "--info", "-i", "--experimental-rerun"}
MULTIRUN_FLAGS = ("-m", "--multirun")
COMPLETION_FLAGS = ("-sc", "--shell-completion")

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


def rename_keys(name: str, args: list[str]) -> list[str]:
    """Former spellings of renamed keys, with a one-line notice each."""
    from cvlab.config.train import RENAMED_KEYS

    renamed = []
    for arg in args:
        prefix, key, rest = _split(arg)
        if name == "train" and key in RENAMED_KEYS:
            new = RENAMED_KEYS[key]
            print(f"cvlab {name}: {key} is now called {new} (the old name works until the "
                  "next release)", file=sys.stderr)
            arg = f"{prefix}{new}{rest}"
        renamed.append(arg)
    return renamed


def _split(arg: str) -> tuple[str, str, str]:
    """(prefix +/++/~, key, "=value") of an override."""
    body = arg.lstrip("+~")
    prefix = arg[:len(arg) - len(body)]
    key, sep, value = body.partition("=")
    return prefix, key, sep + value


def listed_values(name: str, args: list[str]) -> list[str]:
    """A command that runs no sweep takes `key=a,b` (and `key=a`) for a list field as the list
    [a,b] (Hydra would read the commas as a sweep): `cvlab runs group_by=a,b`,
    `cvlab reproduce part=batchnorm`. `cvlab train` keeps Hydra's meaning (a sweep with -m)."""
    if name == "train":
        return args
    from cvlab.config.store import PRIMARY_SCHEMAS

    lists = {item.name for item in dataclasses.fields(PRIMARY_SCHEMAS[name])
             if typing.get_origin(_hint(PRIMARY_SCHEMAS[name], item.name)) is list}
    rewritten = []
    for arg in args:
        prefix, key, rest = _split(arg)
        value = rest[1:]
        if key in lists and rest.startswith("=") and value and not value.startswith("["):
            arg = f"{prefix}{key}=[{value}]"
        rewritten.append(arg)
    return rewritten


def _hint(schema: type, field_name: str) -> Any:
    return typing.get_type_hints(schema).get(field_name)
