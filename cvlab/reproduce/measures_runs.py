"""Measures of what the runs left: summary metrics, sweep series, conv-demo arrays, filters,
sample captions. They read runs only through `context.runs(name)` (RunRecords read by
cvlab.plot.records.load_run) and the files of a run folder; nothing is trained here.

Runs are picked by a selector {key: value}: `normalization` (batchnorm | layernorm | none: the
normalization the run used, `none` for the sweeps' baseline runs) or a dotted config key
(`batch_size`, `model.dropout_keep_ratio`, ...); numbers match to 1e-9 relative.
A run set with no runs here, or with a run that never started (no folder), is not run; a
selected run that did not complete (failed, interrupted; `diverged` counts as a result) leaves
no value, so its item does not hold.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.data.constants import caption_words
from cvlab.records.reader import RunFolder
from cvlab.reproduce.measures import MeasureContext, Measured, measure

log = logging.getLogger(__name__)
FINISHED = ("completed", "diverged")  # statuses whose metrics are a result


class NoRuns(Exception):
    """The measure cannot be taken: its `not_run` (no runs here) or, else, its detail."""

    def __init__(self, message: str, not_run: bool) -> None:
        super().__init__(message)
        self.not_run = not_run

    def measured(self) -> Measured:
        return Measured(None, not_run=str(self)) if self.not_run else \
            Measured(None, detail=str(self))


def _value_of(run: Any, key: str) -> Any:
    return run.normalization if key == "normalization" else run.get(key)


def matches(run: Any, select: Mapping[str, Any] | None) -> bool:
    """Whether the run's config has every value of `select`."""
    for key, wanted in (select or {}).items():
        have = _value_of(run, key)
        if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
            try:
                if not math.isclose(float(have), float(wanted), rel_tol=1e-9):
                    return False
            except (TypeError, ValueError):
                return False
        elif str(have) != str(wanted) and have != wanted:
            return False
    return True


def selected_runs(context: MeasureContext, run: str | list[str],
                  select: Mapping[str, Any] | None = None) -> list[Any]:
    """The finished runs of run set(s) `run` that match `select`; NoRuns when the sets have
    no runs here (not run) or a matching run did not finish or none matches (no value)."""
    names = [run] if isinstance(run, str) else list(run)
    runs = [r for name in names for r in context.runs(name)]
    missing = [folder for name in names for folder in context.missing(name)]
    if missing:
        raise NoRuns(f"{len(missing)} run(s) of {', '.join(names)} did not run (no folder "
                     f"{missing[0]})", not_run=True)
    if not runs:
        raise NoRuns(f"run set {', '.join(names)} has no runs in profile {context.profile}",
                     not_run=True)
    chosen = [r for r in runs if matches(r, select)]
    unfinished = [r for r in chosen if r.status not in FINISHED]
    if unfinished:
        first = unfinished[0]
        raise NoRuns(f"run {first.path} is {first.status}"
                     + (f": {first.summary.error}" if first.summary.error else ""), False)
    if not chosen:
        raise NoRuns(f"no run of {', '.join(names)} matches {dict(select or {})}", False)
    return chosen


def mean_metric(runs: list[Any], metric: str) -> float:
    """The mean of a summary metric over runs (NaN when a run lacks it)."""
    return float(np.mean([run.metric(metric) for run in runs]))


# --- figures ----------------------------------------------------------------------------------


def figure_once(context: MeasureContext, name: str | None,
                make: Callable[[Path], Path | None]) -> Path | None:
    """The figure `name`, drawn by make(path) into the context's figure folder the first time
    it is asked for (items that read the same runs share it); None without a name or folder,
    or when drawing fails (logged: the item's verdict does not depend on its figure)."""
    if not name:
        return None
    if name in context.drawn:
        return context.drawn[name]
    path = context.figure_path(name)
    if path is None:
        return None
    try:
        drawn = make(path)
    except Exception as err:  # noqa: BLE001 - a figure that cannot be drawn is not a verdict
        log.warning("figure %s was not drawn: %s: %s", name, type(err).__name__, err)
        return None
    if drawn is not None:
        context.drawn[name] = drawn
    return drawn


def draw(context: MeasureContext, kind: str, runs: list[Any], name: str | None) -> Path | None:
    """The course's figure `kind` (curves | weight_scale | batch_size | dropout |
    caption_loss) of the runs, as figure `name` (figure_once)."""
    def make(path: Path) -> Path | None:
        from cvlab.plot import curves, sweeps
        from cvlab.plot.captioning import plot_loss
        from cvlab.plot.detect import Target, label_runs, varying_keys

        target = Target(path=path.parent, runs=list(runs), is_set=True, kind=kind,
                        varying=varying_keys(list(runs)))
        label_runs(target)
        plots = {"weight_scale": sweeps.plot_weight_scale, "batch_size": sweeps.plot_batch_size,
                 "dropout": sweeps.plot_dropout}
        if kind in plots:
            return plots[kind](target, path)
        if kind == "caption_loss":
            return plot_loss(target.runs[-1].path, path.parent)
        return curves.plot_compare_curves(target.runs, path, path.stem.replace("_", " "))

    return figure_once(context, name, make)


# --- summary metrics --------------------------------------------------------------------------


@measure("run_metric")
def run_metric(context: MeasureContext, run: str, metric: str,
               select: Mapping[str, Any] | None = None, figure: str | None = None,
               figure_kind: str = "curves") -> Measured:
    """The mean of a summary metric (best_val_acc, final_train_acc, final_loss, ...) over the
    selected runs of a run set. A float."""
    try:
        runs = selected_runs(context, run, select)
    except NoRuns as err:
        return err.measured()
    value = mean_metric(runs, metric)
    drawn = draw(context, figure_kind, runs, figure)
    return Measured(value, figure=drawn, detail=f"{metric} over {len(runs)} run(s) of {run}")


@measure("metric_gap")
def metric_gap(context: MeasureContext, run: str, metric: str, minuend: Mapping[str, Any],
               subtrahend: Mapping[str, Any], subtrahend_metric: str | None = None,
               figure: str | None = None, figure_kind: str = "curves") -> Measured:
    """metric(runs matching `minuend`) - subtrahend_metric (default: metric) of the runs
    matching `subtrahend`, each the mean over its runs (e.g. batchnorm's final train accuracy
    minus the baseline's; a run's best train minus best val accuracy). A float."""
    try:
        first = selected_runs(context, run, minuend)
        second = selected_runs(context, run, subtrahend)
    except NoRuns as err:
        return err.measured()
    other = subtrahend_metric or metric
    a, b = mean_metric(first, metric), mean_metric(second, other)
    drawn = draw(context, figure_kind, context.runs(run), figure)
    return Measured(a - b, figure=drawn, detail=f"{metric} {a:.4g} ({dict(minuend)}) - "
                                                f"{other} {b:.4g} ({dict(subtrahend)})")


@measure("sweep_series")
def sweep_series(context: MeasureContext, runs: list[str], x: str, metric: str,
                 figure: str | None = None, figure_kind: str = "weight_scale") -> Measured:
    """A sweep's series {normalization: [[x, metric], ...]} over the run sets `runs`, sorted by
    x (runs with the same normalization and x are averaged). A dict of lists."""
    try:
        chosen = selected_runs(context, runs)
    except NoRuns as err:
        return err.measured()
    groups: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in chosen:
        groups[str(record.normalization)][float(record.get(x))].append(record.metric(metric))
    series = {name: [[x_value, float(np.mean(values))] for x_value, values in sorted(by_x.items())]
              for name, by_x in groups.items()}
    drawn = draw(context, figure_kind, chosen, figure)
    return Measured(series, figure=drawn, detail=f"{metric} vs {x} by normalization")


# --- files of one run -------------------------------------------------------------------------


def one_run(context: MeasureContext, run: str) -> Any:
    """The (last) finished run of run set `run` (NoRuns as selected_runs)."""
    return selected_runs(context, run)[-1]


def demo_expected(inputs: np.ndarray, check: str) -> np.ndarray:
    """What the conv demo's filter `check` must output for images (N, 3, H, W): `grayscale`
    0.3 R + 0.6 G + 0.1 B; `edges` the horizontal Sobel [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]
    of the blue channel (zero padding 1) + 128. (N, H, W)."""
    if check == "grayscale":
        return 0.3 * inputs[:, 0] + 0.6 * inputs[:, 1] + 0.1 * inputs[:, 2]
    if check == "edges":
        blue = np.pad(inputs[:, 2], ((0, 0), (1, 1), (1, 1)))
        above = blue[:, :-2, :-2] + 2 * blue[:, :-2, 1:-1] + blue[:, :-2, 2:]
        below = blue[:, 2:, :-2] + 2 * blue[:, 2:, 1:-1] + blue[:, 2:, 2:]
        return above - below + 128
    raise ValueError(f"unknown conv demo check {check!r}; valid: grayscale, edges")


DEMO_FILTERS = {"grayscale": 0, "edges": 1}  # the filter index of each check


@measure("conv_demo_error")
def conv_demo_error(context: MeasureContext, run: str, check: str,
                    figure: str | None = None) -> Measured:
    """The largest |output - expected| of the conv demo's saved responses of filter `check`
    (conv_demo_outputs.npy, (N, 2, H, W)) against `demo_expected` of its saved inputs
    (conv_demo_inputs.npy, (N, 3, H, W)). A float."""
    try:
        record = one_run(context, run)
    except NoRuns as err:
        return err.measured()
    inputs = np.load(record.path / "conv_demo_inputs.npy", allow_pickle=False)
    outputs = np.load(record.path / "conv_demo_outputs.npy", allow_pickle=False)
    expected = demo_expected(inputs, check)
    got = outputs[:, DEMO_FILTERS[check]]

    def make(path: Path) -> Path | None:
        from cvlab.plot.images import plot_conv_demo

        return next(iter(plot_conv_demo(record.path, path)), None)

    error = float(np.max(np.abs(got - expected)))
    return Measured(error, figure=figure_once(context, figure, make),
                    detail=f"{check}: {got.shape[0]} images {got.shape[1]}x{got.shape[2]}")


@measure("filters_shape")
def filters_shape(context: MeasureContext, run: str, figure: str | None = None) -> Measured:
    """The shape (F, C, HH, WW) of the first-layer filters in the run's model.npz. A list."""
    from cvlab.plot.records import first_layer_filters

    try:
        record = one_run(context, run)
    except NoRuns as err:
        return err.measured()
    weights = first_layer_filters(record)
    if weights is None:
        return Measured(None, detail=f"{record.path} holds no first-layer filters")

    def make(path: Path) -> Path:
        from cvlab.plot.images import plot_filters

        return plot_filters(weights, path, record.experiment or "")

    drawn = figure_once(context, figure, make)
    return Measured([int(n) for n in weights.shape], figure=drawn,
                    detail=f"filters of {record.path.name}")


@measure("caption_samples_match")
def caption_samples_match(context: MeasureContext, run: str, split: str = "train",
                          figure: str | None = None) -> Measured:
    """The fraction of the run's sample captions (samples.json) of `split` whose generated
    caption equals one of its references (special tokens left out). A float."""
    try:
        record = one_run(context, run)
    except NoRuns as err:
        return err.measured()
    samples = RunFolder(record.path).samples().get(split, [])
    if not samples:
        return Measured(None, detail=f"{record.path} has no {split} captions in samples.json")
    hits = [caption_words(s["generated"]) in {caption_words(r) for r in s["references"]}
            for s in samples]

    def make(path: Path) -> Path | None:
        from cvlab.plot.captioning import plot_gallery

        return plot_gallery(record.path, path.parent)

    drawn = figure_once(context, figure, make)
    example = caption_words(samples[0]["generated"])
    return Measured(float(np.mean(hits)), figure=drawn,
                    detail=f"{sum(hits)} of {len(hits)} {split} samples; e.g. '{example}'")
