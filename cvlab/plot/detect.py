"""Which folder to plot (`run=latest` or a path) and what it holds (run, sweep, experiment).

A target is either one run folder (metrics.csv / config.yaml / summary.json) or a set of
runs: a Hydra sweep folder with job subfolders 0/, 1/, ... (or any folder whose subfolders
are runs). A set is recognized by the config values that differ between its runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvlab.errors import UserError
from cvlab.plot.records import RunRecord, load_run

RUN_FILES = ("metrics.csv", "config.yaml", "summary.json")

# Config keys whose differences say nothing about the experiment.
IGNORED_KEYS = {"outputs_root", "resume", "progress", "checkpoint", "print_every"}

# Sweep kinds in order of precedence: (kind, config key that varies).
SWEEP_AXES = (
    ("weight_scale", "model.weight_scale"),
    ("batch_size", "batch_size"),
    ("dropout", "model.dropout_keep_ratio"),
)


@dataclass
class Target:
    """What `cvlab plot` was pointed at."""

    path: Path
    runs: list[RunRecord]
    is_set: bool  # a sweep or folder of runs (else one run)
    kind: str  # run | weight_scale | batch_size | dropout | comparison
    varying: list[str] = field(default_factory=list)  # config keys that differ between runs

    @property
    def plotted_runs(self) -> list[RunRecord]:
        """Runs that logged at least one metrics row."""
        return [run for run in self.runs if not run.metrics.empty]


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in RUN_FILES)


def member_dirs(path: Path) -> list[Path]:
    """Run folders inside `path`: numbered Hydra job folders first, else any run subfolders."""
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    jobs = sorted((p for p in subdirs if p.name.isdigit()), key=lambda p: int(p.name))
    if jobs:
        return jobs
    return sorted(p for p in subdirs if is_run_dir(p))


def latest_train_dir(outputs_root: Path) -> Path:
    """The newest train run or sweep under `outputs_root` that has something to plot: a
    failed run (or a sweep whose every job failed) is skipped, and the choice is said."""
    from cvlab.records.folders import job_dirs, run_folders
    from cvlab.records.summary import read_summary

    skipped = 0
    for folder, sweep in reversed(run_folders(outputs_root)):
        members = job_dirs(folder) if sweep else [folder]
        statuses = [getattr(read_summary(m), "status", "failed") for m in members]
        if members and any(status != "failed" for status in statuses):
            note = f" (skipped {skipped} newer failed run(s))" if skipped else ""
            print(f"run=latest: {folder}{note}", flush=True)
            return folder
        skipped += 1
    raise UserError(
        f"run=latest found no train run or sweep with results under {outputs_root / 'train'}"
        f"{f' ({skipped} failed)' if skipped else ''}; train one first (cvlab train ...) or "
        "pass run=<run or sweep folder>"
    )


def resolve_target(run: str, outputs_root: str | Path) -> Path:
    """The folder `run=` points at (`latest` or a path); UserError when it is not a run."""
    if run in ("latest", "", None):
        return latest_train_dir(Path(outputs_root)).resolve()
    path = Path(run).expanduser()
    if not path.exists():
        raise UserError(f"run={run} does not exist; pass a run or sweep folder "
                        "(e.g. run=outputs/train/multirun/<date>/<time>) or run=latest")
    if not path.is_dir():
        raise UserError(f"run={run} is a file; pass a run or sweep folder, or run=latest")
    if not is_run_dir(path) and not member_dirs(path):
        raise UserError(f"run={run} is not a run or sweep folder (no metrics.csv, config.yaml "
                        "or job folders 0/, 1/, ...); pass one, or run=latest")
    return path.resolve()


def varying_keys(runs: list[RunRecord]) -> list[str]:
    """Config keys whose values differ between the runs (dotted, in config order)."""
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.flat))
    varying = []
    for key in keys:
        if key in IGNORED_KEYS:
            continue
        values = {_hashable(run.flat.get(key)) for run in runs}
        if len(values) > 1:
            varying.append(key)
    return varying


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def sweep_kind(runs: list[RunRecord], varying: list[str]) -> str:
    """weight_scale | batch_size | dropout | comparison, from what differs between runs
    (runs of different experiments are always a plain comparison)."""
    if "experiment" in varying:
        return "comparison"
    for kind, key in SWEEP_AXES:
        if key in varying:
            return kind
    experiments = {run.experiment for run in runs}
    for kind, _ in SWEEP_AXES:
        if any(name and kind in name for name in experiments):
            return kind
    return "comparison"


def describe_target(path: Path) -> Target:
    """Read the folder and say what it holds."""
    path = Path(path)
    if is_run_dir(path) and not (path / "multirun.yaml").exists():
        run = load_run(path)
        run.label = run.experiment or run.model_type or path.name
        return Target(path=path, runs=[run], is_set=False, kind="run")
    runs = [load_run(p) for p in member_dirs(path)]
    varying = varying_keys(runs)
    target = Target(path=path, runs=runs, is_set=True, kind=sweep_kind(runs, varying),
                    varying=varying)
    label_runs(target)
    return target


def run_label(run: RunRecord, keys: list[str]) -> str:
    """Short legend label of one run from the config keys that set it apart."""
    parts: list[str] = []
    if ("baseline" in keys or "model.normalization" in keys) and run.normalization is not None:
        parts.append("baseline" if run.normalization == "none" else run.normalization)
    for key in keys:
        value = run.get(key)
        if key in ("baseline", "model.normalization"):
            continue
        if key == "batch_size":
            parts.append(f"batch {value}")
        elif key == "model.dropout_keep_ratio":
            parts.append(f"keep {float(value):.2f}")
        elif key == "experiment":
            parts.append(str(value))
        elif key == "model.weight_scale":
            parts.append(f"ws {float(value):.1e}")
        else:
            parts.append(f"{key.split('.')[-1]}={value}")
    return ", ".join(parts) or run.path.name


def label_runs(target: Target, exclude: tuple[str, ...] = ()) -> None:
    """Give each run of a set its legend label (the differing keys, minus `exclude`)."""
    keys = [k for k in target.varying if k not in exclude]
    if "experiment" in keys:  # runs of different experiments: their names say it all
        keys = [k for k in keys if k in ("experiment", "baseline")]
    for run in target.runs:
        run.label = run_label(run, keys)
