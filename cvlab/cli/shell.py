"""`cvlab <command> --help` and shell completion.

Help shows the command's own config groups (with their options) and its whole config: every
field of its schema with the default it would run with. Completion uses Hydra's completion
plugins (bash, zsh, fish): `eval "$(cvlab -sc install=bash)"` installs Hydra's script, whose
queries (`cvlab -sc query=bash` with the shell's COMP_LINE) come back here: the first word
completes to a command, then Hydra completes the command's groups, options and keys.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from omegaconf import OmegaConf

from cvlab.errors import UserError


def command_help(name: str, overrides: list[str]) -> int:
    """Print the help of `cvlab <name>` (with `overrides` applied to the config shown)."""
    from cvlab.cli.words import COMMANDS
    from cvlab.config.compose import compose, hydra_context
    from cvlab.config.store import SCHEMA_SUFFIX

    cfg = compose(name, overrides)
    shown = ("hydra/launcher", "hydra/sweeper") if COMMANDS[name].run_folder else ()
    choices = {g: c for g, c in reversed(cfg.hydra.runtime.choices.items())
               if not g.startswith("hydra/") or g in shown}
    with hydra_context():
        from hydra.core.global_hydra import GlobalHydra

        loader = GlobalHydra.instance().config_loader()
        options = {g: [o for o in loader.get_group_options(g) if not o.endswith(SCHEMA_SUFFIX)]
                   for g in choices}
    command = COMMANDS[name]
    action = f" [{'|'.join(command.actions)}]" if command.actions else ""
    lines = [f"cvlab {name}{action} [group=option ...] [key=value ...] [-m]", "",
             command.summary + "."]
    if command.run_folder:
        lines.append(f"Runs go to {cfg.outputs_root}/{name}/<date>/<time>/ (sweeps: "
                     f"{cfg.outputs_root}/{name}/multirun/<date>/<time>/<job>/).")
    if choices:
        lines += ["", "Config groups (group=option; the option in use in brackets):"]
        for group, chosen in choices.items():
            listed = ", ".join(f"[{o}]" if o == chosen else o for o in options[group])
            lines.append(f"  {group}: {listed}" + ("" if chosen else " (none chosen)"))
    config = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # for printing
    lines += ["", "Config (every field with its default; key=value sets one):", "",
              OmegaConf.to_yaml(config).rstrip(), "",
              "Hydra: -m (sweep, anywhere on the line), hydra/launcher=<name>, "
              "hydra/sweeper=<name>, --cfg job|hydra|all, --info, --hydra-help; "
              "shell completion: -sc install=bash|zsh|fish. Documentation: README.md"]
    print("\n".join(lines))
    return 0


def completion(argv: list[str]) -> int:
    """`-sc install=<shell>`, `-sc uninstall=<shell>` or `-sc query=<shell>` anywhere."""
    from cvlab.cli.words import fail

    request = _request(argv)
    if request is None:
        return fail("cvlab: -sc takes install=<shell>, uninstall=<shell> or query=<shell> "
                    "(shells: bash, zsh, fish)")
    action, shell = request
    plugin = _plugin(shell)
    if plugin is None:
        return fail(f"cvlab: -sc {action}={shell}: shells are bash, zsh, fish")
    saved = sys.argv[0]
    sys.argv[0] = "cvlab"  # the scripts register the completion for this name
    try:
        if action == "install":
            plugin(None).install()
        elif action == "uninstall":
            plugin(None).uninstall()
        else:
            print(("\n" if shell == "fish" else " ").join(candidates(plugin)))
    finally:
        sys.argv[0] = saved
    return 0


def _request(argv: list[str]) -> tuple[str, str] | None:
    for i, arg in enumerate(argv):
        value = None
        if arg in ("-sc", "--shell-completion") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--shell-completion="):
            value = arg.split("=", 1)[1]
        if value is not None and "=" in value:
            action, shell = value.split("=", 1)
            if action in ("install", "uninstall", "query"):
                return action, shell
    return None


def _plugin(shell: str) -> Any:
    from hydra._internal.core_plugins.bash_completion import BashCompletion
    from hydra._internal.core_plugins.fish_completion import FishCompletion
    from hydra._internal.core_plugins.zsh_completion import ZshCompletion

    return {"bash": BashCompletion, "zsh": ZshCompletion, "fish": FishCompletion}.get(shell)


def candidates(plugin: Any) -> list[str]:
    """Completion candidates for the shell's COMP_LINE (`cvlab <command> ...`)."""
    from cvlab.cli.words import COMMANDS
    from cvlab.config.compose import hydra_context

    line = os.environ.get("COMP_LINE", "")
    point = int(os.environ.get("COMP_POINT", len(line)) or len(line))
    words = line[:point].split(" ")[1:]  # drop the program name
    if len(words) <= 1:
        prefix = words[0] if words else ""
        return [c for c in COMMANDS if c.startswith(prefix)]
    name, rest = words[0], words[1:]
    if name not in COMMANDS:
        return []
    command = COMMANDS[name]
    if command.actions and len(rest) == 1 and "=" not in rest[0]:
        return [a for a in command.actions if a.startswith(rest[0])]
    if command.actions and rest and rest[0] in command.actions:
        rest = rest[1:]
    try:
        with hydra_context():
            from hydra.core.global_hydra import GlobalHydra

            found = plugin(GlobalHydra.instance().config_loader())._query(
                config_name=name, line=" ".join(rest))
    except (UserError, Exception):  # noqa: BLE001 - a half-typed line completes to nothing
        return []
    return [c for c in found if not c.split("=")[-1].endswith("_schema")]
