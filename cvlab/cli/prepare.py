"""What `cvlab <command>` does before Hydra runs anything, and after a sweep is interrupted.

    args, run_dir = prepare("train", args)

- `resume=<run folder>|latest`: the stored run's overrides come first, the new ones after;
- every job is composed and checked (cvlab.config.compose): one line, exit 2, nothing run;
- the overrides a resumed run cannot apply are refused;
- the run (or sweep) folder is created exclusively and Hydra is pointed at it; commands that
  produce no run (plot, data) get no folder at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvlab.cli.resume import (
    hydra_quote,
    override_key,
    override_value,
    plan_of,
    resume_target,
    run_overrides,
    sweep_overrides,
)
from cvlab.errors import UserError
from cvlab.records.files import SWEEP_PLAN
from cvlab.records.lock import acquire, release


@dataclass(frozen=True)
class Launch:
    """What Hydra is handed: the overrides, the run (or sweep) folder made for them (None for
    a command that produces no run) and whether the jobs are a sweep."""

    overrides: list[str]
    run_dir: Path | None
    multirun: bool


def prepare(name: str, args: list[str]) -> Launch:
    """Everything before Hydra runs: the config of every job composed and checked, what each
    job needs of the machine checked, the run folder created (a resumed sweep's is its own);
    UserError on anything wrong."""
    from cvlab.cli.words import COMMANDS, MULTIRUN_FLAGS, overrides_of
    from cvlab.config.compose import compose_plan

    multirun = any(a in MULTIRUN_FLAGS for a in args)
    flags = [a for i, a in enumerate(args) if a not in MULTIRUN_FLAGS
             and i not in _positions(args)]
    if flags:
        raise UserError(f"{flags[0]} is one of Hydra's information flags; use it with --cfg, "
                        "--info or --hydra-help, or drop it")
    overrides = overrides_of(args)
    if not COMMANDS[name].run_folder:
        if multirun:
            raise UserError(f"-m does not apply to cvlab {name}: it works on one folder at a time")
        compose_plan(name, overrides, multirun=False)
        return Launch([*overrides, "hydra.run.dir=.", "hydra.output_subdir=null",
                       "hydra/job_logging=cvlab_console"], None, False)
    target = resume_target(overrides) if name == "train" else None
    if target is not None and (target / SWEEP_PLAN).is_file():
        return prepare_sweep_resume(name, target, overrides)
    if target is not None:
        if multirun:
            raise UserError("resume=<run folder> continues one run; drop -m (resume=<sweep "
                            "folder> continues a sweep)")
        overrides = run_overrides(target, overrides)
    composed = compose_plan(name, overrides, multirun)
    _preflight(name, [cfg for _, cfg in composed.jobs])
    run_dir, extra = create_output_folder(name, composed.base, overrides, composed.multirun)
    run_dir = run_dir.resolve()
    if not composed.multirun:
        return Launch([*overrides, *extra], run_dir, False)
    from cvlab.records.plan import write_plan
    from cvlab.run.sweep import make_plan

    plan = make_plan(name, overrides, composed.jobs, sampling=composed.sampling)
    acquire(run_dir)
    write_plan(run_dir, plan)
    launch = [*overrides, *extra]
    if not composed.sampling:
        launch = [*_without_sweeper(launch), *plan_sweeper(run_dir, [j.number for j in plan.jobs])]
    return Launch(launch, run_dir, True)


def prepare_sweep_resume(name: str, sweep_dir: Path, overrides: list[str]) -> Launch:
    """A sweep continued in its folder: its plan's jobs composed again and checked, those
    still to do launched (the others kept as they are)."""
    from cvlab.config.compose import compose_plan
    from cvlab.run.sweep import resume_work, set_aside

    plan = plan_of(sweep_dir)
    arguments, new = sweep_overrides(sweep_dir, overrides)
    acquire(sweep_dir)  # before anything in it changes: a live sweep holds it
    if plan.sampling:  # an Optuna search continues its study, in a new sweep folder
        from cvlab.cli.study import continuation_overrides

        extra = continuation_overrides(sweep_dir, arguments)
        release(sweep_dir)
        new = [o for o in new if override_key(o) != "resume_changed"]
        return prepare(name, ["-m", *arguments, *new, *extra])
    composed = compose_plan(name, arguments, multirun=True)
    allow = any(override_key(o) == "resume_changed" and override_value(o) == "true"
                for o in new)
    work = resume_work(sweep_dir, plan, composed.jobs, allow_changes=allow)
    _preflight(name, [cfg for number, (_, cfg) in enumerate(composed.jobs)
                      if number in work.to_run])
    set_aside(sweep_dir, work.run)
    print(f"resume={sweep_dir}: {work.line()}", flush=True)
    launch = [*_without_sweeper([*arguments, *[o for o in new if override_key(o) !=
                                               "resume_changed"]]),
              f"hydra.sweep.dir={hydra_quote(str(sweep_dir))}",
              *plan_sweeper(sweep_dir, work.to_run)]
    return Launch(launch, sweep_dir, True)


def plan_sweeper(sweep_dir: Path, numbers: list[int]) -> list[str]:
    """The overrides that launch the planned jobs `numbers` with cvlab's plan sweeper."""
    return ["hydra/sweeper=cvlab_plan",
            f"hydra.sweeper.plan={hydra_quote(str(sweep_dir / SWEEP_PLAN))}",
            f"hydra.sweeper.jobs=[{','.join(map(str, numbers))}]"]


def _without_sweeper(overrides: list[str]) -> list[str]:
    """The command line without a choice of the basic sweeper (the plan sweeper replaces it)."""
    return [o for o in overrides if override_key(o) != "hydra/sweeper"]


def _preflight(name: str, configs: list) -> None:
    if name == "train":
        from cvlab.run.train import preflight

        for cfg in configs:
            preflight(cfg)


def _positions(args: list[str]) -> set[int]:
    from cvlab.cli.words import override_positions

    return set(override_positions(args))


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
    from cvlab.records.sweeps import summarize_sweep

    code = getattr(err, "exit_code", 130)
    if run_dir is not None and run_dir.is_dir() and (job_dirs(run_dir)
                                                     or (run_dir / SWEEP_PLAN).is_file()):
        from cvlab.run.sweep import stop_sweep

        stop_sweep(run_dir)  # what this sweep started ends (and records it) before it does
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
    make_console(markup=False).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
