"""`cvlab plot`: the course's figures, a table and report.md from run and sweep folders.

    from cvlab.plot import plot_folder, resolve_target
    result = plot_folder(resolve_target("latest", "outputs"))
    result.files      # PNGs under <folder>/plots/ and <folder>/report.md

Everything is drawn from what the trainers wrote (metrics.csv, config.yaml, summary.json,
checkpoints, saved images); nothing is re-trained. What is drawn depends on what the folder
holds (cvlab.plot.detect): one run, a weight-scale / batch-size / dropout sweep, or any other
set of runs.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from cvlab.errors import UserError
from cvlab.plot.detect import Target, describe_target, resolve_target
from cvlab.plot.records import RunRecord, first_layer_filters
from cvlab.plot.report import Table, key_table, print_table, write_report

__all__ = ["PlotResult", "plot_folder", "resolve_target", "describe_target"]

log = logging.getLogger(__name__)

MAX_CURVES = 12  # more runs than this in one curves figure is unreadable


@dataclass
class PlotResult:
    target: Target
    figures: list[Path]
    report: Path
    table: Table
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return [*self.figures, self.report]


def plot_folder(path: Path, show_table: bool = False) -> PlotResult:
    """Draw everything the folder supports into `<path>/plots/`, write `<path>/report.md`."""
    from cvlab.plot.curves import plot_compare_curves
    from cvlab.plot.sweeps import (
        plot_batch_size,
        plot_dropout,
        plot_weight_scale,
        weight_scale_notes,
    )

    target = describe_target(Path(path))
    out_dir = target.path / "plots"
    figures: list[Path] = []
    notes = _status_notes(target)
    if not target.is_set:
        figures += plot_single_run(target.runs[0], out_dir)
    else:
        plotted = target.plotted_runs
        if target.kind == "weight_scale" and plotted:
            figures.append(plot_weight_scale(target, out_dir / "weight_scale.png"))
            notes += weight_scale_notes(target)
        elif target.kind == "batch_size" and plotted:
            figures.append(plot_batch_size(target, out_dir / "batch_size.png"))
        elif target.kind == "dropout" and plotted:
            figures.append(plot_dropout(target, out_dir / "dropout.png"))
        if plotted and len(plotted) <= MAX_CURVES:
            from cvlab.plot.detect import label_runs

            label_runs(target)
            figures.append(plot_compare_curves(plotted, out_dir / "curves.png",
                                               _set_title(target)))
        elif len(plotted) > MAX_CURVES:
            notes.append(f"{len(plotted)} runs: per-run curves left out "
                         f"(plot one job folder for its curves)")
        for run in target.runs[:MAX_CURVES]:
            figures += _extras(run, out_dir, prefix=f"{run.path.name}_")
    if not figures:
        raise UserError(f"nothing to plot in {target.path}: no metrics.csv rows, checkpoint "
                        "or images (did the run fail? see its summary.json and log)")
    table = key_table(target)
    report = write_report(target, table, figures, notes)
    if show_table:
        print_table(table)
    return PlotResult(target=target, figures=figures, report=report, table=table, notes=notes)


def plot_single_run(run: RunRecord, out_dir: Path) -> list[Path]:
    """Curves (or the captioning figures) plus the run's extras (filters, conv demo)."""
    from cvlab.plot.curves import plot_run_curves

    if run.family == "captioning":
        captioning = _captioning_plotter()
        if captioning is not None:
            try:
                return list(captioning(run.path, out_dir)) + _extras(run, out_dir)
            except Exception as err:  # keep the generic curves rather than nothing
                log.warning("captioning figures failed (%s: %s); drawing the generic curves",
                            type(err).__name__, err)
    figures = []
    if not run.metrics.empty:
        figures.append(plot_run_curves(run, out_dir / "curves.png"))
    return figures + _extras(run, out_dir)


def _captioning_plotter():
    try:
        module = importlib.import_module("cvlab.plot.captioning")
    except ModuleNotFoundError as err:
        if err.name != "cvlab.plot.captioning":
            raise
        return None
    return getattr(module, "plot_captioning_run", None)


def _extras(run: RunRecord, out_dir: Path, prefix: str = "") -> list[Path]:
    """Filter grid of conv nets (from the checkpoint) and the conv-demo images."""
    from cvlab.plot.images import plot_filters

    figures = []
    weights = first_layer_filters(run)
    if weights is not None:
        title = run.experiment or run.model_type
        figures.append(plot_filters(weights, out_dir / f"{prefix}filters.png", title))
    if run.family == "demo":
        from cvlab.plot.images import plot_conv_demo

        figures += plot_conv_demo(run.path, out_dir / f"{prefix}conv_demo.png")
    return figures


# How the notes word a status other than `completed` (cvlab.records.summary.STATUSES).
STATUS_WORDS = {
    "diverged": "diverged", "failed": "failed", "interrupted": "interrupted",
    "running": "running",
    # a `running` summary whose process is gone (killed, or its machine went down)
    "stopped": "stopped without a final status",
}
STOPPED_NOTE = ("its process is gone (killed, or its machine went down) before it could record "
                "how it ended; what it wrote is kept, and a checkpoint.npz continues with "
                "`cvlab train resume=<folder>`")


def _status_notes(target: Target) -> list[str]:
    """One note per status other than `completed`: which runs have it."""
    notes = []
    for status, words in STATUS_WORDS.items():
        names = [r.path.name for r in target.runs if r.status == status]
        if names and target.is_set:
            notes.append(f"{len(names)} run(s) {words}: job(s) {', '.join(names)}")
        elif names:
            notes.append(f"this run is {words}" if status != "stopped"
                         else f"this run {words}: {STOPPED_NOTE}")
    return notes


def _set_title(target: Target) -> str:
    from cvlab.plot.sweeps import sweep_title

    if target.varying and set(target.varying) <= {"baseline", "model.normalization"}:
        return sweep_title(target, "With vs without normalization")
    return sweep_title(target, "Runs compared")
