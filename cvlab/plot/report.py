"""The key numbers of a run or sweep as a table (rich on screen, markdown in report.md)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvlab.plot.detect import Target
from cvlab.plot.records import RunRecord
from cvlab.records.files import atomic_write_text

KIND_TITLES = {
    "run": "Run",
    "weight_scale": "Weight-scale sweep",
    "batch_size": "Batch-size sweep",
    "dropout": "Dropout comparison",
    "comparison": "Runs compared",
}


# RunSummary metrics in a single run's table, in this order
SINGLE_RUN_METRICS = (
    ("final_loss", "final loss"), ("final_loss_mean", "final loss (mean, see below)"),
    ("best_train_acc", "best train acc"), ("best_val_acc", "best val acc"),
    ("final_val_acc", "final val acc"), ("test_acc", "test acc"),
    ("val_bleu1", "val BLEU-1"), ("val_bleu4", "val BLEU-4"),
    ("val_course_bleu", "val course BLEU"), ("train_bleu4", "train BLEU-4"),
    ("images_per_s", "training images/s"), ("captions_per_s", "training captions/s"),
)
# columns of a set of runs: classification, then captioning metrics (those any run has)
SET_METRICS = (("best_train_acc", "best train acc"), ("best_val_acc", "best val acc"),
               ("train_bleu4", "train BLEU-4"), ("val_bleu4", "val BLEU-4"),
               ("final_loss_mean", "final loss"))


KEY_NUMBERS_NOTE = (
    "The numbers are each run's summary.json. Final loss is the mean training loss over the "
    "run's last updates: half the run, at most 100 (the course's mean of the last 100 "
    "iterations of its 200-iteration sweep runs). Accuracies and BLEU are the best seen at "
    "any evaluation. A run is *diverged* when its loss became non-finite or exceeded 1000 "
    "times the smaller of its first loss and an untrained model's (ln C for C classes); it "
    "stopped there. A run *stopped* (without a final status) was "
    "killed before it could record how it ended: its summary still said running, and its "
    "process is gone."
)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]


def fmt(value: Any) -> str:
    """A cell: floats to 4 significant digits, missing as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4g}"
    return str(value)


def key_table(target: Target) -> Table:
    """One row per run: its label, status and the final numbers of its summary.json."""
    short = Path(*target.path.parts[-2:]).as_posix()
    title = f"{KIND_TITLES.get(target.kind, target.kind)} {short}"
    if not target.is_set:
        return _single_run_table(target, title)
    settings = setting_columns(target)
    metrics = [(key, name) for key, name in SET_METRICS
               if any(run.summary.metric(key) is not None for run in target.runs)]
    columns = ["job", *settings, "status", *(name for _, name in metrics), "wall time (s)"]
    rows = []
    for run in target.runs:
        rows.append([run.path.name, *(cell(run) for cell in settings.values()), run.status,
                     *(fmt(run.summary.metric(key)) for key, _ in metrics),
                     fmt(run.summary.wall_time_s)])
    return Table(title, columns, rows)


def setting_columns(target: Target) -> dict[str, Callable[[RunRecord], str]]:
    """One table column per differing config key (baseline/normalization shown as `model`)."""
    columns: dict[str, Callable[[RunRecord], str]] = {}
    for key in target.varying:
        if key in ("baseline", "model.normalization"):
            columns["model"] = lambda run: ("baseline" if run.normalization == "none"
                                            else str(run.normalization))
        elif key == "model.weight_scale":
            columns["weight scale"] = lambda run: f"{float(run.get('model.weight_scale')):.2e}"
        else:
            name = key.split(".")[-1] if key.startswith("model.") else key
            columns[name.replace("_", " ")] = lambda run, key=key: fmt(run.get(key))
    if not columns:
        columns["run"] = lambda run: run.label
    return columns


def _single_run_table(target: Target, title: str) -> Table:
    run = target.runs[0]
    summary = run.summary
    items: list[tuple[str, Any]] = [
        ("status", run.status), ("model", run.model_type), ("experiment", run.experiment),
        ("dataset", summary.dataset), ("device", summary.device),
        ("iterations", summary.metrics.get("iterations")),
    ]
    items += [(name, summary.metric(key)) for key, name in SINGLE_RUN_METRICS]
    items.append(("wall time (s)", summary.wall_time_s))
    rows = [[name, fmt(value)] for name, value in items if fmt(value) != ""]
    return Table(title, ["metric", "value"], rows)


def print_table(table: Table) -> None:
    """Print the table with rich (plain text when not on a terminal)."""
    from rich.table import Table as RichTable

    from cvlab.progress import make_console

    rich_table = RichTable(title=table.title)
    for column in table.columns:
        numeric = column in ("job", "weight scale") or column.endswith(("acc", "loss", "(s)"))
        rich_table.add_column(column, justify="right" if numeric else "left",
                              no_wrap=column in ("model", "run", "weight scale"))
    for row in table.rows:
        rich_table.add_row(*row)
    console = make_console(markup=False)
    console.print(rich_table)


def markdown_table(table: Table) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in table.rows]
    return "\n".join(lines)


def write_report(target: Target, table: Table, figures: list[Path], notes: list[str]) -> Path:
    """`<target>/report.md`: what the folder holds, the figures (relative paths), the table."""
    heading = KIND_TITLES.get(target.kind, target.kind)
    lines = [f"# {heading}: {target.path.name}", "", f"- Folder: `{target.path}`"]
    if target.is_set:
        lines.append(f"- Runs: {len(target.runs)}"
                     + (f"; differing settings: {', '.join(f'`{k}`' for k in target.varying)}"
                        if target.varying else ""))
    datasets = sorted({str(r.summary.dataset or r.get("dataset.name") or "")
                       for r in target.runs} - {""})
    if datasets:
        lines.append(f"- Dataset: {', '.join(datasets)}")
    lines.append("")
    lines += [f"- {note}" for note in notes]
    if notes:
        lines.append("")
    for path in figures:
        relative = Path(os.path.relpath(path, target.path)).as_posix()
        lines += [f"![{path.stem}]({relative})", ""]
    lines += ["## Key numbers", "", KEY_NUMBERS_NOTE, "", markdown_table(table), ""]
    path = target.path / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
