"""The registry of measures: what each catalog item computes.

A measure is `f(context: MeasureContext, **params) -> Measured`, registered with
`@measure("name")`; the params are the plain values of the item's `measure:` entry in
catalog.yaml (numbers, strings, lists; a param named `run`, `runs` or `*_run` names run sets
of the catalog's `runs:`). Measures that need no run (layer forward checks, gradient checks,
initial losses at the course's seeds) compute in process; the others read their runs only
through `context.runs(name)`.

The measures live in four modules, imported on first use: measures_layers (the layers'
forward checks), measures_gradients (the layers' gradient checks), measures_models
(FullyConnectedNet, ThreeLayerConvNet, CaptioningRNN, the update rules) and measures_runs
(what the runs left). Items that read the same runs name the same figure; it is drawn once
per context (`context.drawn`).

The in-process measures take the course's functions and classes from `course_api()`: cvlab's
own, or, while an item of `cvlab reproduce impl=<folder>` is measured (`using(context.
implementation)`), stand-ins that run a student's code in a worker process
(cvlab.impl.remote), with cvlab's for the names their folder does not have.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODULES = (
    "cvlab.reproduce.measures_layers",
    "cvlab.reproduce.measures_gradients",
    "cvlab.reproduce.measures_models",
    "cvlab.reproduce.measures_runs",
)


@dataclass
class Measured:
    """What a measure found: `value` (a number, a list or a dict of numbers, or None), a figure
    it drew (a PNG under context.out_dir), a one-line `detail`, or `not_run` saying why it
    could not be measured here (its runs are missing, data it needs is absent)."""

    value: float | list | dict | None
    figure: Path | None = None
    detail: str = ""
    not_run: str | None = None


@dataclass
class MeasureContext:
    """What a measure may use: the profile (quick | full), a folder for figures, a seed, and
    the runs of each run set.

    `run_folders` maps a run-set name of the catalog to the folders `cvlab train` wrote for
    it: run folders, or sweep folders whose numbered job folders are each one run.
    """

    profile: str = "quick"
    out_dir: Path | None = None
    seed: int = 0
    run_folders: Mapping[str, Sequence[Path]] = field(default_factory=dict)
    implementation: Any = None  # a student's code (cvlab.impl.remote.Implementation), or None
    drawn: dict[str, Path] = field(default_factory=dict, repr=False)  # figures drawn, by name
    _loaded: dict[str, list[Any]] = field(default_factory=dict, repr=False)
    _missing: dict[str, list[Path]] = field(default_factory=dict, repr=False)

    def runs(self, name: str) -> list[Any]:
        """The runs of run set `name` (cvlab.plot.records.RunRecord, any status), in folder
        and job order; [] when the set has no folder here. Folders that do not exist (runs
        that never started) are left out and listed by `missing(name)`."""
        if name not in self._loaded:
            from cvlab.plot.records import load_run
            from cvlab.records.folders import job_dirs

            runs, missing = [], []
            for folder in map(Path, self.run_folders.get(name, ())):
                if not folder.is_dir():
                    missing.append(folder)
                    continue
                runs += [load_run(job) for job in (job_dirs(folder) or [folder])]
            self._loaded[name], self._missing[name] = runs, missing
        return self._loaded[name]

    def missing(self, name: str) -> list[Path]:
        """The folders of run set `name` that do not exist."""
        self.runs(name)
        return self._missing[name]

    def figure_path(self, name: str) -> Path | None:
        """Where a measure may write the figure `name` (None when there is no figure folder)."""
        if self.out_dir is None:
            return None
        Path(self.out_dir).mkdir(parents=True, exist_ok=True)
        return Path(self.out_dir) / name


class CvlabCourse:
    """cvlab's own functions and classes under the course's names (cvlab.layers, the update
    rules, FullyConnectedNet, ThreeLayerConvNet, CaptioningRNN), looked up when used."""

    def __getattr__(self, name: str) -> Any:
        from cvlab.impl.remote import reference

        if name.startswith("_"):
            raise AttributeError(name)
        return reference(name)


_COURSE_API: ContextVar[Any] = ContextVar("course_api", default=None)


def course_api() -> Any:
    """The course's names for the measure being taken: a student's implementation's stand-ins
    (falling back to cvlab's) inside `using(implementation)`, else cvlab's."""
    implementation = _COURSE_API.get()
    return CvlabCourse() if implementation is None else implementation.namespace(fallback=True)


@contextlib.contextmanager
def using(implementation: Any) -> Iterator[None]:
    """Measures in the block take the course's names from `implementation` (None: cvlab's)."""
    token = _COURSE_API.set(implementation)
    try:
        yield
    finally:
        _COURSE_API.reset(token)


Measure = Callable[..., Measured]
_MEASURES: dict[str, Measure] = {}


def measure(name: str) -> Callable[[Measure], Measure]:
    """Register `f(context, **params) -> Measured` as the measure `name`."""
    def add(fn: Measure) -> Measure:
        _MEASURES[name] = fn
        return fn

    return add


def load_measures() -> dict[str, Measure]:
    """Every measure by name (imports the measure modules once)."""
    for module in MODULES:
        importlib.import_module(module)
    return dict(_MEASURES)


def measure_names() -> list[str]:
    return sorted(load_measures())


def get_measure(name: str) -> Measure:
    """The measure `name`; ValueError listing the valid names when there is none."""
    measures = load_measures()
    if name not in measures:
        raise ValueError(f"unknown measure {name!r}; valid: {', '.join(sorted(measures))}")
    return measures[name]


def run_params(params: Mapping[str, Any]) -> list[str]:
    """The run-set names among a measure's params (`run`, `runs`, `*_run`), in order."""
    names: list[str] = []
    for key, value in params.items():
        if key in ("run", "runs") or key.endswith("_run"):
            names += [value] if isinstance(value, str) else list(value)
    return names
