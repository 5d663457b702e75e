"""What `cvlab <command>` does before Hydra runs anything, and after a sweep is interrupted.

    args, run_dir = prepare("train", args)

- `resume=<run folder>|latest`: the stored run's overrides come first, the new ones after;
- every job is composed and checked (cvlab.config.compose): one line, exit 2, nothing run;
- the overrides a resumed run cannot apply are refused;
- the run (or sweep) folder is created exclusively and Hydra is pointed at it; commands that
  produce no run (plot, data) get no folder at all.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvlab.errors import UserError


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


def override_key(override: str) -> str:
    """The key an override sets (`model` for model=cnn, `a.b` for ++a.b=1)."""
    return _split(override)[1]


@dataclass(frozen=True)
class Launch:
    """What Hydra is handed: the overrides, the run (or sweep) folder made for them (None for
    a command that produces no run) and whether the jobs are a sweep."""

    overrides: list[str]
    run_dir: Path | None
    multirun: bool


def prepare(name: str, args: list[str]) -> Launch:
    """Everything before Hydra runs: the config of every job composed and checked, what each
    job needs of the machine checked, the run folder created; UserError on anything wrong."""
    from cvlab.cli.words import COMMANDS, MULTIRUN_FLAGS, overrides_of
    from cvlab.config.compose import compose_plan

    multirun = any(a in MULTIRUN_FLAGS for a in args)
    flags = [a for i, a in enumerate(args) if a not in MULTIRUN_FLAGS
             and i not in _positions(args)]
    if flags:
        raise UserError(f"{flags[0]} is one of Hydra's information flags; use it with --cfg, "
                        "--info or --hydra-help, or drop it")
    if not COMMANDS[name].run_folder:
        if multirun:
            raise UserError(f"-m does not apply to cvlab {name}: it works on one folder at a time")
        compose_plan(name, overrides_of(args), multirun=False)
        return Launch([*overrides_of(args), "hydra.run.dir=.", "hydra.output_subdir=null",
                       "hydra/job_logging=cvlab_console"], None, False)
    args = with_resumed_overrides(args)
    plan = compose_plan(name, overrides_of(args), multirun)
    if name == "train":
        from cvlab.run.train import preflight

        for _, cfg in plan.jobs:
            preflight(cfg)
    run_dir, extra = create_output_folder(name, plan.base, args, plan.multirun)
    if plan.multirun and not plan.sampling:
        from cvlab.records.sweeps import write_sweep_plan

        write_sweep_plan(run_dir, [job for job, _ in plan.jobs])
    return Launch([*overrides_of(args), *extra], run_dir.resolve(), plan.multirun)


def _positions(args: list[str]) -> set[int]:
    from cvlab.cli.words import override_positions

    return set(override_positions(args))


def with_resumed_overrides(args: list[str]) -> list[str]:
    """With `resume=<run folder>|latest`: the overrides that run was started with, then the
    new ones (which win), and the folder's path; the run's own config is so the base of the
    new one. A job of a sweep resumes as a single run."""
    from cvlab.cli.words import MULTIRUN_FLAGS, override_positions

    positions = override_positions(args)
    resume = [i for i in positions if override_key(args[i]) == "resume"]
    if not resume:
        return args
    value = args[resume[-1]].split("=", 1)[1].strip().strip("'\"")
    if value in ("", "null", "None"):
        return args
    if any(a in MULTIRUN_FLAGS for a in args):
        raise UserError("resume= continues one run; drop -m (a sweep's job folder resumes as "
                        "a single run)")
    folder = resolve_resume(value, [args[i] for i in positions])
    mine = [args[i] for i in positions if i not in resume]
    keys = {override_key(o) for o in mine} | {"resume", "hydra.mode", "hydra.run.dir",
                                             "hydra.sweep.dir", "outputs_root"}
    kept = rename_keys("train", [o for o in stored_overrides(folder)
                                 if override_key(o) not in keys])
    flags = [a for i, a in enumerate(args) if i not in positions]
    return [*flags, *kept, *mine, f"resume={hydra_quote(str(folder))}", "hydra.mode=RUN"]


def resolve_resume(value: str, overrides: list[str]) -> Path:
    """The run folder `resume=` names (`latest`: the newest run with a checkpoint)."""
    from cvlab.records.files import CHECKPOINT_NAME
    from cvlab.records.folders import latest_run_with

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


def create_output_folder(name: str, cfg: Any, args: list[str],
                         multirun: bool) -> tuple[Path, list[str]]:
    """Create the run (or sweep) folder exclusively before Hydra starts; the override that
    points Hydra at it. A folder given as hydra.run.dir / hydra.sweep.dir must be new or empty
    (a run never reuses a folder)."""
    from cvlab.records.folders import create_run_dir, default_run_parent

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
    from cvlab.cli.words import fail
    from cvlab.records.files import SWEEP_PLAN
    from cvlab.records.folders import job_dirs
    from cvlab.records.sweeps import close_interrupted_jobs, summarize_sweep

    code = getattr(err, "exit_code", 130)
    if run_dir is not None and run_dir.is_dir() and (job_dirs(run_dir)
                                                     or (run_dir / SWEEP_PLAN).is_file()):
        close_interrupted_jobs(run_dir)
        rows = summarize_sweep(run_dir)
        counts = ", ".join(f"{sum(r['status'] == s for r in rows)} {s}" for s in
                           sorted({r["status"] for r in rows}))
        return fail(f"cvlab {name}: interrupted ({err}); jobs: {counts}; sweep summary in "
                    f"{run_dir}", code)
    return fail(f"cvlab {name}: interrupted ({err}); results so far are in {run_dir}", code)


SWEEP_TABLE_METRICS = ("best_val_acc", "best_train_acc", "val_bleu4", "train_bleu4",
                       "final_loss_mean", "test_acc", "wall_time_s")


def print_sweep_table(sweep_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Job, status, the overrides that differ between jobs, and the key metrics."""
    from rich.table import Table

    from cvlab.config.compose import shared_overrides
    from cvlab.progress import make_console

    tokens = [str(row.get("overrides", "")).split() for row in rows]
    shared = shared_overrides(tokens)
    table = Table(title=f"sweep {sweep_dir}")
    metrics = [m for m in SWEEP_TABLE_METRICS if any(m in row for row in rows)]
    for column in ("job", "status", "overrides", *metrics):
        table.add_column(column)
    for row, words in zip(rows, tokens):
        varying = " ".join(w for w in words if w not in shared)
        table.add_row(str(row["job"]), str(row["status"]), varying,
                      *(_cell(row.get(m)) for m in metrics))
    make_console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
