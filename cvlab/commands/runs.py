"""`cvlab runs [where=...] [sort=[-]key] [limit=N] [group_by=...] [metrics=...] [diff=...]
[format=table|csv|json]`: a query over every run under outputs_root; creates no folder.

    cvlab runs                                               # every run, newest first
    cvlab runs where='status:completed tag:baseline best_val_acc:gt:0.3' sort=-best_val_acc
    cvlab runs group_by=model.normalization                  # mean, std, count per group
    cvlab runs diff=[train/2026-12-04/10-00-00-000001,train/2026-12-04/10-05-00-000002]

The runs are read by cvlab.commands.runs_index (through RunFolder), the query is applied by
cvlab.commands.runs_query, and the answer goes out as a rich table, CSV or JSON
(cvlab.commands.runs_output). A folder that cannot be read is listed as unreadable, one line
with its reader's message, and the query goes on; only bad arguments fail (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvlab.commands.runs_index import RunsIndex, flat_config, read_runs
from cvlab.commands.runs_output import Table, emit, say
from cvlab.commands.runs_query import (
    config_diff,
    group_stats,
    is_missing,
    parse_terms,
    resolve,
    sort_frame,
    where_mask,
)
from cvlab.config.commands import RunsConfig
from cvlab.errors import UserError
from cvlab.records.files import CONFIG_NAME, SWEEP_PLAN, RecordError
from cvlab.records.reader import RunFolder

IDENTITY_COLUMNS = {"folder": "folder", "status": "status", "family": "family",
                    "model_type": "model_type", "experiment": "experiment", "tags": "tags"}
KEY_SETTINGS = ("seed", "epochs", "learning_rate", "normalization", "weight_scale")
MAIN_METRICS = ("best_val_acc", "val_bleu4")  # classifiers, captioning: the first a run has
GROUP_METRICS = ("best_val_acc", "val_bleu4", "final_loss_mean")  # the default of group_by


def main(cfg: RunsConfig, run_dir: Path, overrides: list[str] | None = None) -> int:
    """Answer the query `cfg` (a diff, a grouping or a listing) on stdout; exit code 0."""
    root = Path(cfg.outputs_root).expanduser()
    if cfg.diff:
        emit(diff_table(root, cfg.diff), cfg.format)
        return 0
    terms = parse_terms(cfg.where)  # a bad term fails before anything is read
    index = read_runs(root)
    for term in terms:
        index.frame = index.frame[where_mask(index, term).to_numpy()].copy()
    matched = len(index.frame)
    if cfg.group_by:
        table = group_table(index, cfg)
        shown = f"{len(table.rows)} group{'' if len(table.rows) == 1 else 's'} of {matched} runs"
    else:
        table = list_table(index, cfg, [term.key for term in terms])
        shown = f"{len(table.rows)} listed"
    emit(table, cfg.format)
    for folder, message in index.unreadable:
        say(f"unreadable {folder}: {message}", cfg.format)
    scope = (f"{matched} of {index.readable} readable runs match where" if terms
             else f"{index.readable} readable runs")
    say(f"{shown}; {scope} under {root}, {len(index.unreadable)} unreadable", cfg.format)
    return 0


def list_table(index: RunsIndex, cfg: RunsConfig, where_keys: list[str]) -> Table:
    """One row per run: identity, key settings, the keys asked about, the main metric."""
    columns = dict(IDENTITY_COLUMNS)
    for name in KEY_SETTINGS:
        column = f"settings.{name}"
        if column in index.frame.columns and not index.frame[column].map(is_missing).all():
            columns[name] = column
    sort_key = cfg.sort.lstrip("-") if cfg.sort else None
    asked = [(key, "where") for key in where_keys] + [(key, "metrics") for key in cfg.metrics]
    for key, source in [*([(sort_key, "sort")] if sort_key else []), *asked]:
        column = resolve(key, index, source)
        if column not in columns.values():
            columns[key] = column
    frame = index.frame
    if sort_key:
        frame = sort_frame(frame, resolve(sort_key, index, "sort"), cfg.sort.startswith("-"))
    if cfg.limit is not None:
        frame = frame.head(cfg.limit)
    rows = frame[list(columns.values())].astype(object).values.tolist()
    table = Table(list(columns), rows, optional=("family", "experiment", "tags"))
    table.add_main_metric(main_metrics(frame))
    return table


def main_metrics(frame: Any) -> list[tuple[str, float] | None]:
    """(name, value) of each run's main metric: best_val_acc, else val_bleu4, else None."""
    found: list[tuple[str, float] | None] = [None] * len(frame)
    for name in reversed(MAIN_METRICS):
        column = f"metrics.{name}"
        if column not in frame.columns:
            continue
        for position, value in enumerate(frame[column].astype(object).tolist()):
            if not is_missing(value):
                found[position] = (name, float(value))
    return found


def group_table(index: RunsIndex, cfg: RunsConfig) -> Table:
    """Mean, std and count of the metrics per group of the group_by keys."""
    keys = {key: resolve(key, index, "group_by") for key in cfg.group_by}
    if cfg.metrics:
        metrics = {key: resolve(key, index, "metrics") for key in cfg.metrics}
    else:
        metrics = {name: f"metrics.{name}" for name in GROUP_METRICS
                   if f"metrics.{name}" in index.frame.columns
                   and not index.frame[f"metrics.{name}"].map(is_missing).all()}
    result = group_stats(index.frame, keys, metrics)
    if cfg.sort:
        descending, key = cfg.sort.startswith("-"), cfg.sort.lstrip("-")
        column = key if key in keys or key == "runs" else f"{key}_mean"
        if column not in result.columns:
            allowed = ", ".join([*keys, "runs", *metrics])
            raise UserError(f"sort={cfg.sort}: with group_by, sort by a group key, runs or a "
                            f"metric shown ({allowed})")
        result = sort_frame(result, column, descending)
    if cfg.limit is not None:
        result = result.head(cfg.limit)
    return Table(list(result.columns), result.values.tolist())


def diff_table(root: Path, folders: list[str]) -> Table:
    """The config keys in which two run folders differ: key, first value, second value."""
    first, second = (run_folder(root, name) for name in folders)
    try:
        configs = [flat_config(RunFolder(path).config()) for path in (first, second)]
    except RecordError as err:
        raise UserError(f"diff: {err}") from None
    rows = [list(difference) for difference in config_diff(*configs)]
    note = None if rows else f"the configs of {folders[0]} and {folders[1]} are the same"
    return Table(["key", "first", "second"], rows, headers=["key", *folders], note=note)


def run_folder(root: Path, name: str) -> Path:
    """A run folder named absolute, relative to the outputs root (as `cvlab runs` lists it)
    or relative to the current folder; UserError when it holds no config.yaml."""
    path = Path(name).expanduser()
    candidates = [path] if path.is_absolute() else [root / path, path]
    for candidate in candidates:
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    hint = ""
    if any((c / SWEEP_PLAN).is_file() or (c / "0").is_dir() for c in candidates):
        hint = f" (a sweep folder: pass one of its jobs, e.g. {name.rstrip('/')}/0)"
    raise UserError(f"diff: {name} is not a run folder{hint}; pass two run folders as "
                    f"`cvlab runs` lists them (relative to outputs_root={root}) or absolute, "
                    f"e.g. diff=[train/<date>/<time>,train/multirun/<date>/<time>/0]")
