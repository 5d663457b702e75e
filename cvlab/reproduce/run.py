"""A reproduction: the catalog's runs planned and continued like a sweep, then every item
measured and judged, into reproduction.json and the report.

    setup = prepare(cfg)                 # the plan, the folder (a new one or the last one
                                         # of the profile), what to keep, continue and run
    ...                                  # cvlab.cli launches setup.work.to_run
    reproduction = conclude(setup, wall_time_s, interrupted=None)

The runs are planned with the sweep plan (cvlab.records.plan): every run set of the catalog
that the profile runs, expanded into its jobs and numbered in catalog order, whatever parts are
asked for, so that a job keeps its number (and folder) from one reproduction to the next. A
rerun of the same command continues the newest reproduction folder of the profile: a job whose
resolved config is unchanged and that completed is kept, an interrupted one continues from its
checkpoint, a changed, failed or missing one runs (the mechanism of a resumed sweep,
cvlab.run.sweep). `rerun=true` starts a new folder.

With `impl=<folder>` (a student's code) the runs of cvlab's FullyConnectedNet,
ThreeLayerConvNet and CaptioningRNN train theirs instead (model=impl_*: the jobs record
model.impl and a digest of their code, so a change of their code reruns the jobs), launched in
the launcher's worker processes; the in-process measures use their functions and classes
through a worker process (cvlab.impl.remote), cvlab's where their folder has none; every item
says whose code its value came from ("implementation": yours, cvlab's or mixed). Only a
reproduction of the same folder is continued.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvlab.config.commands import ReproduceConfig
from cvlab.config.train import TrainConfig
from cvlab.errors import UserError
from cvlab.records.files import RecordError
from cvlab.records.folders import create_run_dir, default_run_parent, run_folders
from cvlab.records.plan import Plan, read_plan, write_plan
from cvlab.records.reader import RunFolder
from cvlab.reproduce.catalog import (
    Catalog,
    Evaluation,
    Item,
    MeasureContext,
    evaluate,
    load_catalog,
)
from cvlab.reproduce.report import dump_reproduction, load_reproduction, tally, write_report
from cvlab.run.sweep import Work, make_plan, resume_work
from cvlab.train.signals import Interrupted

COMMAND = "reproduce"
FIGURES = "figures"


@dataclass
class Setup:
    """A reproduction ready to launch."""

    cfg: ReproduceConfig
    profile: str
    catalog: Catalog
    items: list[Item]
    folder: Path
    plan: Plan
    jobs_of: dict[str, list[int]]  # run set -> its planned job numbers
    work: Work
    unavailable: dict[str, str] = field(default_factory=dict)  # run set -> why it cannot run
    configs: dict[int, TrainConfig] = field(default_factory=dict)  # planned job -> config
    started: str = ""
    implementation: Any = None  # impl=: the student's code (cvlab.impl.remote), run in workers
    impl_runs: set[str] = field(default_factory=set)  # run sets that train the student's class


def prepare(cfg: ReproduceConfig) -> Setup:
    """The catalog's items of the asked parts, the plan of their runs, the folder (new, or the
    last reproduction of the profile continued) and the work; UserError on bad input."""
    catalog = _catalog()
    try:
        items = catalog.for_parts(cfg.part)
    except ValueError as err:
        raise UserError(f"part={cfg.part}: {err}") from None
    profile = resolve_profile(cfg.profile)
    swaps = implementation_models(cfg.impl)
    unavailable = missing_data(catalog, profile)
    jobs, jobs_of, impl_runs = plan_jobs(catalog, profile, device_overrides(cfg), swaps,
                                         gpu=has_gpu(cfg, profile), skip=set(unavailable))
    plan = make_plan("train", [], jobs)
    wanted = sorted({number for item in items if profile in item.profiles
                     for name in item.run_names for number in jobs_of.get(name, [])})
    folder, earlier = _folder(cfg, profile)
    if earlier is None:
        work = Work(run=wanted)
    else:
        work = resume_work(folder, earlier, jobs, allow_changes=False, on_change="run",
                           numbers=wanted)
    return Setup(cfg=cfg, profile=profile, catalog=catalog, items=items, folder=folder,
                 plan=plan, jobs_of=jobs_of, work=work, unavailable=unavailable,
                 configs={number: cfg for number, (_, cfg) in enumerate(jobs)},
                 started=datetime.datetime.now().isoformat(timespec="seconds"),
                 implementation=_implementation(cfg, folder), impl_runs=impl_runs)


# cvlab's model options and the options that train a student's class instead (cvlab.models.
# impl_nets), with the class that must be in their folder.
IMPL_OPTIONS = {"fc": ("impl_fc", "FullyConnectedNet"),
                "bn_fc": ("impl_bn_fc", "FullyConnectedNet"),
                "ln_fc": ("impl_ln_fc", "FullyConnectedNet"),
                "dropout_fc": ("impl_dropout_fc", "FullyConnectedNet"),
                "cnn": ("impl_cnn", "ThreeLayerConvNet"),
                "caption_rnn": ("impl_caption_rnn", "CaptioningRNN"),
                "caption_lstm": ("impl_caption_lstm", "CaptioningRNN")}


def implementation_models(impl: str | None) -> dict[str, list[str]]:
    """impl=: cvlab's model option -> the overrides that train the student's class instead,
    for the classes their folder holds (told by its files, without importing them: a single
    layers.py must define the class itself)."""
    if impl is None:
        return {}
    from cvlab.impl.course import digest, find_layout

    layout = find_layout(impl)
    code = digest(layout)
    texts = {}  # a single layers.py is read once, however many classes are looked for in it
    swaps = {}
    for option, (impl_option, name) in IMPL_OPTIONS.items():
        path = layout.file_of(layout.module_of(name))
        if path.is_file() and path not in texts:
            texts[path] = "" if layout.package else path.read_text()
        if path.is_file() and (layout.package or f"class {name}" in texts[path]):
            swaps[option] = [f"model={impl_option}", f"model.impl={layout.folder}",
                             f"model.impl_digest={code}"]
    return swaps


def _implementation(cfg: ReproduceConfig, folder: Path) -> Any:
    """impl=: the student's code, run in worker processes (their output in the folder's
    impl_output.log); None without impl=."""
    if cfg.impl is None:
        return None
    from cvlab.impl.course import find_layout
    from cvlab.impl.remote import Implementation

    return Implementation(find_layout(cfg.impl), folder / "impl_output.log", cfg.timeout_s,
                          cfg.memory_gb)


def _catalog() -> Catalog:
    try:
        return load_catalog()
    except ValueError as err:
        raise UserError(f"the reproduction catalog cannot be used: {err}") from None


def resolve_profile(profile: str) -> str:
    """quick | full; `auto`: full where CIFAR-10 is found, else quick. full without CIFAR-10
    is a UserError saying where it looked and how to get it."""
    from cvlab.data import cifar10

    root = cifar10.resolve_root(None)
    found = cifar10.find_source(root) is not None
    if profile == "auto":
        return "full" if found else "quick"
    if profile == "full" and not found:
        raise UserError(f"profile=full needs CIFAR-10, not found at {root}; run `cvlab data "
                        "fetch dataset=cifar10` (or set CVLAB_DATA to the folder holding "
                        "cifar10/), or use profile=quick")
    return profile


def device_overrides(cfg: ReproduceConfig) -> tuple[list[str], list[str]]:
    """(for every run, for the runs that use a device): device.threads, device=<name>."""
    threads = [f"device.threads={cfg.device.threads}"] if cfg.device.threads else []
    name = [f"device={cfg.device.name}"] if cfg.device.name != "auto" else []
    return threads, name


def has_gpu(cfg: ReproduceConfig, profile: str) -> bool:
    """Whether the full profile's runs get a GPU (device=cpu: no; otherwise: when torch finds
    one). The quick profile asks nothing: it runs no GPU recipe."""
    if profile != "full" or cfg.device.name == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


def missing_data(catalog: Catalog, profile: str) -> dict[str, str]:
    """The run sets whose data the profile needs and this machine lacks, and why."""
    if profile != "full":
        return {}
    from cvlab.data.coco import find_coco
    from cvlab.paths import dataset_root

    return {name: (f"COCO captioning is not at {dataset_root('coco', None)}; `cvlab data "
                   "fetch dataset=coco` gets it") for name, run_set in catalog.runs.items()
            if run_set.needs == "coco" and find_coco(None) is None}


def plan_jobs(catalog: Catalog, profile: str, device: tuple[list[str], list[str]],
              swaps: dict[str, list[str]] | None = None, gpu: bool = True,
              skip: set[str] | None = None
              ) -> tuple[list[tuple[list[str], TrainConfig]], dict[str, list[int]], set[str]]:
    """Every run set the profile runs (but those in `skip`), expanded into its jobs (composed
    and checked), in catalog order; each run set's job numbers; the run sets that train a
    student's class. `device`: overrides for every run, and for the runs whose family uses a
    device (device_overrides); `swaps`: cvlab's model option -> the overrides that train the
    student's class instead (implementation_models); `gpu`: whether the full profile's GPU
    recipes can run (else their CPU variants)."""
    from cvlab.config.compose import compose_plan, hydra_context

    jobs: list[tuple[list[str], TrainConfig]] = []
    jobs_of: dict[str, list[int]] = {}
    swapped: set[str] = set()
    with hydra_context() as hydra:
        for name, run_set in catalog.runs.items():
            overrides = run_set.command(profile, gpu)
            if overrides is None or name in (skip or ()):
                continue
            overrides = [*overrides, f"tags=[{COMMAND}_{name}]", *device[0]]
            plan = compose_plan("train", overrides, False, hydra)
            option = str(plan.base.hydra.runtime.choices.get("model"))
            if swaps and option in swaps:
                overrides = [*overrides, *swaps[option]]
                plan = compose_plan("train", overrides, False, hydra)
                swapped.add(name)
            composed = plan.jobs
            if device[1] and _uses_device(composed[0][1]):
                composed = compose_plan("train", [*overrides, *device[1]], False, hydra).jobs
            jobs_of[name] = list(range(len(jobs), len(jobs) + len(composed)))
            jobs += [(list(job), cfg) for job, cfg in composed]
    return jobs, jobs_of, swapped


def _uses_device(cfg: TrainConfig) -> bool:
    from cvlab.models.registry import spec_for

    return "device.name" not in spec_for(cfg.model.type).family.unused_fields


def _folder(cfg: ReproduceConfig, profile: str) -> tuple[Path, Plan | None]:
    """The newest reproduction folder of the profile with its plan (continued), or a new
    folder (rerun=true, or none yet)."""
    root = Path(cfg.outputs_root)
    if not cfg.rerun:
        for folder, _ in reversed(run_folders(root, COMMAND)):
            earlier = _earlier(folder)
            if earlier is not None and earlier[0] == (profile, _impl_folder(cfg.impl)):
                return folder.resolve(), earlier[1]
    parent = default_run_parent(root, COMMAND, multirun=False)
    return create_run_dir(parent).resolve(), None


def _impl_folder(impl: str | None) -> str | None:
    return None if impl is None else str(Path(impl).expanduser().resolve())


def _earlier(folder: Path) -> tuple[tuple[str, str | None], Plan] | None:
    """((profile, implementation folder or None), plan) of an earlier reproduction folder;
    None for a folder without both (an empty one); UserError for one whose records are not
    cvlab's."""
    if not (folder / "reproduction.json").is_file():
        return None
    try:
        plan = read_plan(folder)
        reproduction = load_reproduction(folder)
    except RecordError as err:
        raise UserError(f"the last reproduction, {folder}, cannot be continued: {err}; "
                        "rerun=true starts a new one") from None
    implementation = reproduction.get("implementation")
    folder_of = implementation.get("folder") if isinstance(implementation, dict) else None
    return ((str(reproduction["profile"]), folder_of), plan) if plan is not None else None


def write_setup(setup: Setup) -> None:
    """The plan into the folder (the jobs to launch are read from it)."""
    write_plan(setup.folder, setup.plan)


def conclude(setup: Setup, wall_time_s: float, interrupted: str | None = None
             ) -> dict[str, Any]:
    """Measure and judge every item, write reproduction.json and the report; the
    reproduction. Items whose runs did not finish are not_run; a signal while measuring makes
    the rest not_run, and is raised again once the report is written."""
    context = MeasureContext(profile=setup.profile, out_dir=setup.folder / FIGURES,
                             run_folders={name: [setup.folder / str(n) for n in numbers]
                                          for name, numbers in setup.jobs_of.items()},
                             implementation=setup.implementation)
    rows, seconds = [], {}
    stopped: Interrupted | None = None
    try:
        for item in setup.items:
            started = time.perf_counter()
            rows.append(_measured_row(item, context, setup))
            seconds[item.notebook] = (seconds.get(item.notebook, 0.0) + time.perf_counter()
                                      - started)
    except Interrupted as err:  # the items not yet measured are not_run; the report is written
        stopped, interrupted = err, interrupted or f"interrupted by {err}"
        rows += [_row(item, Evaluation("not_run", detail=f"{interrupted} before it was "
                                       "measured"), setup) for item in setup.items[len(rows):]]
    finally:
        if setup.implementation is not None:
            setup.implementation.close()
    reproduction = {
        "format": 1, "command": COMMAND, "profile": setup.profile, "parts": list(setup.cfg.part),
        "started": setup.started, "wall_time_s": round(wall_time_s, 1),
        "machine": machine(), "counts": tally(rows),
        "notebooks": _notebooks(rows, seconds, setup),
        "items": rows,
    }
    if setup.implementation is not None:
        from cvlab.impl.course import digest

        layout = setup.implementation.layout
        reproduction["implementation"] = {"folder": str(layout.folder), "digest": digest(layout)}
    if interrupted:
        reproduction["interrupted"] = interrupted
    dump_reproduction(setup.folder, reproduction)
    write_report(setup.folder, reproduction)
    if stopped is not None:
        raise stopped
    return reproduction


def _measured_row(item: Item, context: MeasureContext, setup: Setup) -> dict[str, Any]:
    """The item measured and judged (with impl=: within timeout_s, marked by whose code its
    value came from)."""
    unfinished = _unfinished(item, setup)
    if unfinished:
        return _row(item, Evaluation("not_run", detail=unfinished), setup)
    impl = setup.implementation
    if impl is None:
        return _row(item, evaluate(item, context), setup)
    impl.used.clear()
    impl.borrowed.clear()
    with impl.limit(setup.cfg.timeout_s):
        row = _row(item, evaluate(item, context), setup)
    row["implementation"] = whose(item, impl.used, impl.borrowed, setup.impl_runs)
    return row


def _unfinished(item: Item, setup: Setup) -> str | None:
    """Why the item's runs cannot be judged (data missing here, a run interrupted or never
    started), or None: a run that failed is judged (a failure is a result)."""
    if setup.profile not in item.profiles:
        return None
    for name in item.run_names:
        if name in setup.unavailable:
            return setup.unavailable[name]
        for number in setup.jobs_of.get(name, []):
            summary = _summary(RunFolder(setup.folder / str(number)))
            status = summary.status if summary is not None else "not_started"
            if status in ("interrupted", "stopped", "running", "not_started"):
                return f"its run {number} ({name}) is {status.replace('_', ' ')}"
    return None


def whose(item: Item, used: set[str], borrowed: set[str], impl_runs: set[str]) -> str:
    """"yours" when the item's value came from the student's code (their functions, or runs
    of their class), "cvlab's" when from cvlab's alone, "mixed" when from both."""
    mine = bool(used) or any(name in impl_runs for name in item.run_names)
    theirs = bool(borrowed) or any(name not in impl_runs for name in item.run_names) \
        or not (used or item.run_names)
    return "mixed" if mine and theirs else ("yours" if mine else "cvlab's")


def _row(item: Item, result: Any, setup: Setup) -> dict[str, Any]:
    figure = result.figure
    runs = [str(n) for name in item.run_names for n in setup.jobs_of.get(name, [])]
    return {"id": item.id, "notebook": item.notebook, "section": item.section,
            "what": item.what, "course": item.course, "value": _plain(result.value),
            "rule": dict(item.rule), "verdict": result.state, "detail": result.detail,
            "figure": str(Path(figure).relative_to(setup.folder)) if figure else None,
            "runs": runs}


def _plain(value: Any) -> Any:
    """A measured value as JSON holds it (numpy numbers as numbers)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _notebooks(rows: Sequence[dict[str, Any]], seconds: dict[str, float], setup: Setup
               ) -> list[dict[str, Any]]:
    """Each notebook's counts and wall time (its runs' wall time and its measures')."""
    from cvlab.records.reader import RunFolder

    notebooks = []
    for name in dict.fromkeys(row["notebook"] for row in rows):
        mine = [row for row in rows if row["notebook"] == name]
        numbers = {int(n) for row in mine for n in row["runs"]}
        run_seconds = 0.0
        for number in numbers:
            summary = _summary(RunFolder(setup.folder / str(number)))
            run_seconds += (summary.wall_time_s or 0.0) if summary is not None else 0.0
        notebooks.append({"name": name, "counts": tally(mine),
                          "wall_time_s": round(run_seconds + seconds.get(name, 0.0), 1)})
    return notebooks


def _summary(folder: Any) -> Any:
    try:
        return folder.summary() if folder.path.is_dir() else None
    except RecordError:
        return None


def machine() -> dict[str, Any]:
    """The machine the reproduction ran on: CPU, cores, GPU (when torch is loaded and sees
    one), and the versions of Python, numpy and torch."""
    import sys

    import numpy as np

    torch = sys.modules.get("torch")
    gpu = torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() \
        else None
    return {"cpu": _cpu_name(), "cores": os.cpu_count(), "gpu": gpu,
            "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__ if torch is not None else None,
            "platform": platform.platform()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
