"""The `cvlab` command: `cvlab <command> [action] [hydra overrides...]`.

This is the only module (with the config schemas) that knows about Hydra. It composes and
validates the command's config before any work, hands Hydra the run (or multirun), and
calls the command's `main(cfg, run_dir)` with a validated dataclass and the run folder.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
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


COMMANDS: dict[str, Command] = {
    "train": Command("train a model, an experiment or a sweep (-m / sweep=...) from configs"),
    "gradcheck": Command("check analytic gradients against numeric ones (layer=<name>|all)"),
    "plot": Command("draw figures, a table and report.md from a run or sweep folder"),
    "data": Command("show what datasets are found (info) or download one (fetch)",
                    ("info", "fetch")),
    "bench": Command("benchmark layers (layers) or training speed (train)", ("layers", "train")),
}

# Hydra flags that print information instead of running, and flags that take a value.
INFO_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--version",
              "--shell-completion", "-sc"}
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
               "--config-dir", "-cd", "--info", "-i", "--experimental-rerun",
               "--shell-completion", "-sc"}

_state: dict[str, Any] = {}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: cvlab <command> [action] [key=value ...] [-m]", "", "commands:"]
    for name, command in COMMANDS.items():
        actions = f" [{'|'.join(command.actions)}]" if command.actions else ""
        lines.append(f"  {name:<{width}}  {command.summary}{actions}")
    lines += ["", "`cvlab <command> --help` shows the command's config groups and options."]
    return "\n".join(lines)


def fail(message: str, code: int = 2) -> int:
    print(message if message.startswith("cvlab") else f"cvlab: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    # A log file on a full disk must not print tracebacks: the failure is reported once.
    logging.raiseExceptions = False
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        return fail(f"unknown command {name!r}; valid commands: {', '.join(COMMANDS)} "
                    "(see cvlab --help)")
    command = COMMANDS[name]
    if rest and "=" not in rest[0] and not rest[0].startswith("-"):
        word = rest.pop(0)
        if word not in command.actions:
            allowed = ", ".join(command.actions) if command.actions else "none"
            return fail(f"cvlab {name}: unknown action {word!r}; valid actions: {allowed}")
        rest.insert(0, f"action={word}")
    run_dir: Path | None = None
    if not INFO_FLAGS.intersection(rest):
        try:
            rest = with_resumed_overrides(rest)
            positions = override_positions(rest)
            forced, cfg = precheck(name, [rest[i] for i in positions])
            for i, override in zip(positions, forced):
                rest[i] = override
            check_resume(name, cfg)
            run_dir, extra = create_output_folder(name, cfg, rest)
            rest += extra
        except UserError as err:
            return fail(f"cvlab {name}: {err}")
        except OSError as err:
            return fail(f"cvlab {name}: cannot create the run folder: {err}", 1)
    from cvlab.train.core import Interrupted, signals_as_interrupts

    with signals_as_interrupts():
        try:
            return run_hydra(name, rest, run_dir)
        except Interrupted as err:
            return finish_interrupted(name, run_dir, err)


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


def unknown_key_message(name: str, key: str, model_type: str | None = None) -> str | None:
    """`unknown key model.weight_scal; did you mean model.weight_scale? valid keys: ...`.

    With the chosen `model_type`, `model.*` keys are those of that model's schema only.
    """
    import difflib

    from cvlab.config.commands import model_keys, schema_keys

    keys = schema_keys(name)
    if model_type is not None and key.startswith("model."):
        keys = {k for k in keys if not k.startswith("model.")} | model_keys(model_type)
    parent = key.rsplit(".", 1)[0] + "." if "." in key else ""
    siblings = sorted(
        k[len(parent):] for k in keys if k.startswith(parent) and "." not in k[len(parent):]
    )
    if not siblings:
        return None
    guess = difflib.get_close_matches(key[len(parent):], siblings, n=1)
    hint = f"; did you mean {parent}{guess[0]}?" if guess else ""
    where = f" in {parent[:-1]}" if parent else ""
    return f"unknown key {key!r}{hint} valid keys{where}: {', '.join(siblings)}"


def first_of_sweeps(overrides: list[str]) -> list[str]:
    """Replace each sweep override (a=1,2 / range / choice) by its first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    result = []
    for text, override in zip(overrides, parsed):
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            result.append(text.split("=", 1)[0] + "=" + first)
        else:
            result.append(text)
    return result


def one_line(err: BaseException) -> str:
    """Hydra's multi-line error messages folded into one line."""
    text = str(err)
    cause = err.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += "\n" + str(cause)
    parts: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Config search path"):
            break
        if not line or line.startswith(("full_key:", "object_type", "reference_type")):
            continue
        if raw.startswith("\t") and parts:
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line
        else:
            parts.append(line)
    return "; ".join(parts)


def precheck(name: str, overrides: list[str]) -> tuple[list[str], Any]:
    """Compose and validate the config before Hydra runs anything (first value of sweeps).

    Returns the overrides to hand to Hydra (a schema field that the YAML files leave at its
    default, which Hydra refuses, is set with `++key=value`) and the composed config (with its
    `hydra` node). A typo is reported with the valid keys.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from cvlab.config.commands import schema_keys, validate
    from cvlab.paths import config_dir

    overrides = list(overrides)
    keys = schema_keys(name)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            for _ in range(len(overrides) + 1):
                try:
                    cfg = compose(config_name=name, overrides=first_of_sweeps(overrides),
                                  return_hydra_config=True)
                    break
                except (HydraException, OmegaConfBaseException, ValueError) as err:
                    match = re.search(r"Could not override '([^']+)'", str(err))
                    key = match.group(1) if match else None
                    spots = [i for i, o in enumerate(overrides) if o.split("=", 1)[0] == key]
                    if key in keys and spots:
                        overrides[spots[0]] = "++" + overrides[spots[0]]
                        continue
                    model_type = None
                    if key and key.startswith("model.") and spots:
                        rest = overrides[:spots[0]] + overrides[spots[0] + 1:]
                        with contextlib.suppress(Exception):
                            model_type = compose(
                                config_name=name, overrides=first_of_sweeps(rest)
                            ).model.type
                    message = unknown_key_message(name, key, model_type) if key else None
                    if message:
                        raise UserError(message) from None
                    raise UserError(f"invalid config or override: {one_line(err)} "
                                    f"(see cvlab {name} --help)") from None
    finally:
        GlobalHydra.instance().clear()
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    try:
        validate(name, plain)
    except OmegaConfBaseException as err:
        raise UserError(f"invalid config: {one_line(err)}") from None
    return overrides, cfg


def override_key(override: str) -> str:
    """The key an override sets (`model` for model=cnn, `a.b` for ++a.b=1)."""
    return override.split("=", 1)[0].lstrip("+~")


def with_resumed_overrides(args: list[str]) -> list[str]:
    """With `resume=<run folder>|latest`: the overrides that run was started with, then the
    new ones (which win), and the folder's path; the run's own config is so the base of the
    new one. A job of a sweep resumes as a single run."""
    positions = override_positions(args)
    resume = [i for i in positions if override_key(args[i]) == "resume"]
    if not resume:
        return args
    value = args[resume[-1]].split("=", 1)[1].strip().strip("'\"")
    if value in ("", "null", "None"):
        return args
    if "-m" in args or "--multirun" in args:
        raise UserError("resume= continues one run; drop -m (a sweep's job folder resumes as "
                        "a single run)")
    folder = resolve_resume(value, [args[i] for i in positions])
    stored = stored_overrides(folder)
    mine = [args[i] for i in positions if i not in resume]
    keys = {override_key(o) for o in mine} | {"resume", "hydra.mode", "hydra.run.dir",
                                             "hydra.sweep.dir", "outputs_root"}
    kept = [o for o in stored if override_key(o) not in keys]
    flags = [a for i, a in enumerate(args) if i not in positions]
    return [*flags, *kept, *mine, f"resume={hydra_quote(str(folder))}", "hydra.mode=RUN"]


def check_resume(name: str, cfg: Any) -> None:
    """Refuse, before any work, the overrides a resumed run cannot apply."""
    from omegaconf import OmegaConf

    from cvlab.config.commands import validate

    if name != "train" or not cfg.get("resume"):
        return
    from cvlab.train.run import check_resume_config

    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    resolved = OmegaConf.to_container(OmegaConf.create(plain), resolve=True)
    check_resume_config(validate(name, resolved), Path(str(cfg.resume)))


def resolve_resume(value: str, overrides: list[str]) -> Path:
    """The run folder `resume=` names (`latest`: the newest run with a checkpoint)."""
    from cvlab.runs import latest_run_with
    from cvlab.train.core import CHECKPOINT_NAME

    if value == "latest":
        roots = [o.split("=", 1)[1] for o in overrides if override_key(o) == "outputs_root"]
        root = Path(roots[-1] if roots else "outputs")
        found = latest_run_with(root, CHECKPOINT_NAME)
        if found is None:
            raise UserError(f"resume=latest found no run with a {CHECKPOINT_NAME} under "
                            f"{root / 'train'}; pass resume=<run folder>")
        print(f"resume=latest: {found}", flush=True)
        return found.resolve()
    folder = Path(value).expanduser()
    if not (folder / CHECKPOINT_NAME).is_file():
        raise UserError(f"resume={value}: no {CHECKPOINT_NAME} there; pass the folder of a run "
                        "that reached an epoch end with checkpoint=true, or resume=latest")
    return folder.resolve()


def stored_overrides(folder: Path) -> list[str]:
    """The overrides a run folder was started with (its .hydra/overrides.yaml), safely read."""
    import yaml

    path = folder / ".hydra" / "overrides.yaml"
    try:
        stored = yaml.safe_load(path.read_text()) if path.is_file() else []
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"resume={folder}: cannot read {path} ({err})") from None
    if not isinstance(stored, list) or not all(isinstance(o, str) for o in stored):
        raise UserError(f"resume={folder}: {path} is not a list of overrides")
    return stored


def hydra_quote(value: str) -> str:
    """`value` as a quoted Hydra override value."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def create_output_folder(name: str, cfg: Any, args: list[str]) -> tuple[Path, list[str]]:
    """Create the run (or sweep) folder exclusively before Hydra starts; the override that
    points Hydra at it. A folder given as hydra.run.dir / hydra.sweep.dir must be new or empty
    (a run never reuses a folder)."""
    from cvlab.runs import create_run_dir, default_run_parent

    multirun = "-m" in args or "--multirun" in args or str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = [a for a in args if override_key(a) == key]
    if given:
        folder = Path(given[-1].split("=", 1)[1].strip("'\""))
        if folder.is_dir() and any(folder.iterdir()):
            raise UserError(f"{key}={folder} already holds files; a run never reuses a folder: "
                            "give a new one")
        folder.mkdir(parents=True, exist_ok=True)
        return folder, []
    parent = default_run_parent(Path(str(cfg.outputs_root)), name, multirun)
    folder = create_run_dir(parent)
    return folder, [f"{key}={hydra_quote(str(folder))}"]


def finish_interrupted(name: str, run_dir: Path | None, err: BaseException) -> int:
    """SIGINT / SIGTERM reached this process during a run or sweep: record, one line."""
    from cvlab.runs import close_interrupted_jobs, job_dirs, summarize_sweep

    code = getattr(err, "exit_code", 130)
    if run_dir is not None and run_dir.is_dir() and job_dirs(run_dir):
        close_interrupted_jobs(run_dir)
        rows = summarize_sweep(run_dir)
        counts = ", ".join(f"{sum(r['status'] == s for r in rows)} {s}" for s in
                           sorted({r["status"] for r in rows}))
        return fail(f"cvlab {name}: interrupted ({err}); jobs: {counts}; sweep summary in "
                    f"{run_dir}", code)
    return fail(f"cvlab {name}: interrupted ({err}); results so far are in {run_dir}", code)


def run_hydra(name: str, args: list[str], run_dir: Path | None = None) -> int:
    import hydra

    from cvlab.paths import config_dir

    _state.clear()

    @hydra.main(config_path=str(config_dir()), config_name=name, version_base="1.3")
    def task(cfg: Any) -> int:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        overrides = list(hydra_cfg.overrides.task)
        code = execute(name, cfg, run_dir, overrides, multirun)
        _state["code"] = code
        return code

    from hydra.errors import HydraException

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
        return fail(f"cvlab {name}: {one_line(err)} (see cvlab {name} --help)")
    finally:
        sys.argv = saved
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env
    if "sweep_failed" in _state:
        return 1 if _state["sweep_failed"] else 0
    return int(_state.get("code", 0))


def execute(name: str, cfg: Any, run_dir: Path, overrides: list[str], multirun: bool) -> int:
    """Validate, run the command's main(cfg, run_dir) and record how it ended."""
    from omegaconf import OmegaConf

    from cvlab.config.commands import validate
    from cvlab.runs import atomic_write_text, read_summary, write_summary
    from cvlab.train.core import Interrupted, signals_as_interrupts

    try:
        with signals_as_interrupts():
            atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
            typed = validate(name, OmegaConf.to_container(cfg, resolve=True))
            module = importlib.import_module(f"cvlab.commands.{name}")
            code = module.main(typed, run_dir, overrides) if name == "train" \
                else module.main(typed, run_dir)
    except Interrupted as err:
        _close(run_dir, status="interrupted", error=f"interrupted by {err}", overrides=overrides)
        if multirun:
            raise  # the sweep stops; cli.main records it
        return fail(f"cvlab {name}: interrupted ({err}); results so far are in {run_dir}",
                    err.exit_code)
    except UserError as err:
        _close(run_dir, status="failed", error=str(err), overrides=overrides)
        return fail(f"cvlab {name}: {err}")
    except OSError as err:  # a full disk, a folder that cannot be written
        _close(run_dir, status="failed", error=str(err), overrides=overrides)
        return fail(f"cvlab {name}: {err} (run folder {run_dir})", 1)
    except Exception as err:  # a bug, not a user mistake: keep the traceback in the run's log
        trace = "".join(traceback.format_exception(err))
        log.debug(trace)
        with contextlib.suppress(OSError), (run_dir / "error.log").open("a") as f:
            f.write(trace)
        _close(run_dir, status="failed", error=f"{type(err).__name__}: {err}",
               overrides=overrides)
        return fail(f"cvlab {name}: {type(err).__name__}: {err} "
                    f"(traceback in {run_dir / 'error.log'})", 1)
    summary = read_summary(run_dir)
    if summary is not None and not summary.overrides:
        write_summary(run_dir, overrides=overrides)
    return int(code or 0)


def _close(run_dir: Path, **fields: Any) -> None:
    """Record how a run ended in its summary.json, keeping a final status already written
    (an interrupted training run records itself); never raises."""
    from cvlab.runs import read_summary, write_summary

    summary = read_summary(run_dir)
    if summary is not None and summary.status not in ("running",) and "status" in fields:
        fields.pop("status")
        fields.pop("error", None)
    with contextlib.suppress(OSError, ValueError):
        write_summary(run_dir, **fields)


class SweepSummaryCallback:
    """Hydra callback: when a multirun ends, write the sweep's summary of all jobs."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from cvlab.runs import summarize_sweep

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = summarize_sweep(sweep_dir)
        _state["sweep_failed"] = any(row["status"] == "failed" for row in rows)
        _print_sweep_table(sweep_dir, rows)

    # Hydra calls these too; nothing to do.
    def on_run_start(self, config: Any, **kwargs: Any) -> None: ...
    def on_run_end(self, config: Any, **kwargs: Any) -> None: ...
    def on_multirun_start(self, config: Any, **kwargs: Any) -> None: ...
    def on_job_start(self, config: Any, **kwargs: Any) -> None: ...
    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None: ...
    def on_compose_config(self, config: Any, config_name: Any, overrides: Any) -> None: ...


SWEEP_TABLE_METRICS = ("best_val_acc", "best_train_acc", "val_bleu4", "train_bleu4",
                       "final_loss_mean", "test_acc", "wall_time_s")


def _print_sweep_table(sweep_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Job, status, the overrides that differ between jobs, and the key metrics."""
    from rich.console import Console
    from rich.table import Table

    tokens = [str(row.get("overrides", "")).split() for row in rows]
    shared = set.intersection(*map(set, tokens)) if tokens else set()
    table = Table(title=f"sweep {sweep_dir}")
    metrics = [m for m in SWEEP_TABLE_METRICS if any(m in row for row in rows)]
    for column in ("job", "status", "overrides", *metrics):
        table.add_column(column)
    for row, words in zip(rows, tokens):
        varying = " ".join(w for w in words if w not in shared)
        table.add_row(str(row["job"]), str(row["status"]), varying,
                      *(_cell(row.get(m)) for m in metrics))
    Console(width=160 if not sys.stdout.isatty() else None).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


if __name__ == "__main__":
    # Run through the imported module so that Hydra's callback (cvlab.cli.SweepSummaryCallback)
    # and this entry point share one module state.
    from cvlab import cli

    sys.exit(cli.main())
