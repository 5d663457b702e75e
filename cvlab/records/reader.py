"""The one reader of a run folder: every command that reads a run (resume, eval, plot, sweep
resume, `cvlab runs`) reads it here, so that the same folder gets the same answer everywhere.

    folder = RunFolder(run_dir)
    folder.config()          # config.yaml as a dict (safely read, checked)
    folder.summary()         # summary.json as a RunSummary (checked), None when there is none
    folder.metrics()         # metrics.csv as a DataFrame of floats (intact rows only)
    folder.metrics_rows()    # the same rows as written (header, rows of strings)
    folder.weights("model")  # model.npz: family, model_type and the weights tree
    folder.check()           # every file above, checked (the state files' arrays not loaded)

What is read is checked, and anything that cannot be used is a RecordError: one line naming the
file and what is wrong. Nothing here writes, and nothing read can run code: YAML is read with
the safe loader and refused when it names a `_target_` (an object to instantiate), JSON is
plain data, arrays come from .npy members without pickle (cvlab.records.state).

Every command that reads a run (resume, eval, plot) calls `check()` first: a folder with one
damaged or tampered file gets the same one-line refusal from each, whichever files the command
goes on to use.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cvlab.errors import error_line
from cvlab.records.files import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    METRICS_NAME,
    SAMPLES_NAME,
    SUMMARY_NAME,
    WEIGHT_FILES,
    RecordError,
)
from cvlab.records.processes import host_name as host_name  # (cvlab.run.train imports it here)
from cvlab.records.processes import process_alive
from cvlab.records.state import MAX_DEPTH, WEIGHTS_KIND, check_state, load_state
from cvlab.records.summary import METRIC_KEYS, RunSummary

# YAML's safe loader (no object is ever built from a tag), in C where libyaml is there
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")  # a family or model type as cvlab names them


class RunFolder:
    """A run folder, read on demand (nothing is read when it is made)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def check(self) -> None:
        """Every record file the folder holds, checked as the commands read it: config.yaml,
        summary.json, and checkpoint.npz, model.npz and model_best.npz without loading their
        arrays (cvlab.records.state.check_state). RecordError on the first that cannot be
        used; missing files are not an error here (each command says what it needs)."""
        if self.has(CONFIG_NAME):
            self.config()
        self.summary()
        self.check_state_files()

    def check_state_files(self) -> None:
        """checkpoint.npz, model.npz and model_best.npz checked without loading their arrays
        (the part of `check` past config.yaml and summary.json)."""
        if self.has(CHECKPOINT_NAME):
            path = self.path / CHECKPOINT_NAME
            _check_checkpoint(check_state(path), path)
        for file_name in WEIGHT_FILES.values():
            if self.has(file_name):
                path = self.path / file_name
                _check_weights(check_state(path, kind=WEIGHTS_KIND), path)

    # ---- config.yaml ---------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """config.yaml as nested dicts; RecordError when it is missing, not YAML, not a mapping
        of string keys, or asks for an object to be instantiated (`_target_`)."""
        path = self.path / CONFIG_NAME
        try:
            data = yaml.load(path.read_text(), Loader=SAFE_LOADER)
        except FileNotFoundError:
            raise RecordError(f"{path} does not exist") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as err:
            raise RecordError(f"{path} cannot be read ({error_line(err)})") from None
        if not isinstance(data, dict):
            raise RecordError(f"{path} is not a config (a mapping of keys to values)")
        _check_tree(data, path)
        return data

    # ---- summary.json --------------------------------------------------------------------

    def summary(self) -> RunSummary | None:
        """summary.json as a RunSummary (None when the folder has none); RecordError when it
        is not JSON, names a family or model type that is not a name, or holds metrics that
        are not numbers. A `running` run whose process is gone reads as `stopped`."""
        path = self.path / SUMMARY_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
            raise RecordError(f"{path} cannot be read ({error_line(err)})") from None
        if not isinstance(data, dict):
            raise RecordError(f"{path} is not a run summary (a JSON object)")
        _check_tree(data, path)
        for key in ("family", "model_type"):
            _check_name(data.get(key), key, path)
        metrics = data.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise RecordError(f"{path}: metrics is not a JSON object")
        for key in METRIC_KEYS:
            if key in metrics and not _is_number(metrics[key]):
                raise RecordError(f"{path}: metric {key} is {str(metrics[key])[:40]!r}, not a "
                                  "number")
        summary = RunSummary.from_dict(data)
        if summary.status == "running" and not process_alive(summary.pid, summary.host):
            summary.status = "stopped"
        return summary

    # ---- samples.json --------------------------------------------------------------------

    def samples(self) -> dict[str, list[dict[str, Any]]]:
        """samples.json (captioning runs): split -> [{"generated", "references", ...}]; {} when
        the folder has none; RecordError when it cannot be read or is not such a mapping."""
        path = self.path / SAMPLES_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
            raise RecordError(f"{path} cannot be read ({error_line(err)})") from None
        splits = data.get("splits") if isinstance(data, dict) else None
        if not isinstance(splits, dict) or not all(
                isinstance(items, list) and all(isinstance(item, dict) for item in items)
                for items in splits.values()):
            raise RecordError(f"{path} is not a samples file (splits of caption records)")
        return splits

    # ---- metrics.csv ---------------------------------------------------------------------

    def metrics(self) -> Any:
        """metrics.csv as a DataFrame of floats (empty cells NaN; empty frame when missing).

        Rows that do not parse (a file cut mid-row, anything appended after it) end the
        table: the intact rows before them are kept. A cell written as `nan` (a diverged
        loss) is NaN too, but unlike an empty cell it counts as logged:
        `frame.attrs["logged"][column]` marks the rows where the column was written.
        """
        import numpy as np
        import pandas as pd

        header, rows = self.metrics_rows()
        if not header:
            return pd.DataFrame()
        frame = pd.DataFrame(index=range(len(rows)))
        logged = {}
        for position, name in enumerate(header):
            cells = [row[position].strip() for row in rows]
            logged[name] = np.array([cell != "" for cell in cells], dtype=bool)
            frame[name] = [float(cell) if cell else math.nan for cell in cells]
        frame.attrs["logged"] = logged
        return frame

    def metrics_rows(self) -> tuple[list[str], list[list[str]]]:
        """metrics.csv's header and its intact rows, as written (strings); ([], []) when
        missing. What a resumed run carries over (the rows metrics() reads)."""
        path = self.path / METRICS_NAME
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            return [], []
        except OSError as err:
            raise RecordError(f"{path} cannot be read ({error_line(err)})") from None
        return _intact_rows(text)

    # ---- weights and checkpoints ----------------------------------------------------------

    def weights(self, name: str = "model") -> dict[str, Any]:
        """model.npz (name "model") or model_best.npz ("model_best"): {"family", "model_type",
        "weights"}; StateError (a RecordError's kin, one line) when it cannot be used."""
        path = self.path / WEIGHT_FILES[name]
        tree = load_state(path, kind=WEIGHTS_KIND)
        _check_weights(tree, path)
        return tree

    def checkpoint(self) -> dict[str, Any]:
        """checkpoint.npz: {"meta", "loop", "task"}."""
        path = self.path / CHECKPOINT_NAME
        tree = load_state(path)
        _check_checkpoint(tree, path)
        return tree

    def checkpoint_meta(self) -> dict[str, Any]:
        """checkpoint.npz's meta (family, model type), read from its structure: no array is
        loaded."""
        path = self.path / CHECKPOINT_NAME
        structure = check_state(path)
        _check_checkpoint(structure, path)
        return structure["meta"]


def _check_weights(tree: Any, path: Path) -> None:
    """A weights tree names its family and model type as cvlab writes them."""
    for key in ("family", "model_type"):
        _check_name(tree.get(key) if isinstance(tree, dict) else None, key, path, required=True)


def _check_checkpoint(tree: Any, path: Path) -> None:
    if not (isinstance(tree, dict)
            and all(isinstance(tree.get(key), dict) for key in ("meta", "loop", "task"))):
        raise RecordError(f"{path} is not a training checkpoint (it lacks meta, loop or task)")


def _check_name(value: Any, key: str, path: Path, required: bool = False) -> None:
    """`value` is a family or model type as cvlab writes one (or None, unless required)."""
    if value is None:
        if required:
            raise RecordError(f"{path} names no {key}")
        return
    if not (isinstance(value, str) and NAME.match(value)):
        raise RecordError(f"{path}: {key} {str(value)[:40]!r} is not a name cvlab writes "
                          "(letters, digits and _)")


def _intact_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """The header and the rows up to the first that does not parse (wrong number of cells,
    a cell that is not a number)."""
    lines = text.splitlines()
    if not lines:
        return [], []
    header = next(csv.reader(io.StringIO(lines[0])))
    rows = []
    for line in lines[1:]:
        try:
            (row,) = list(csv.reader(io.StringIO(line)))
        except (csv.Error, ValueError):
            break
        if len(row) != len(header) or not all(_is_cell(cell) for cell in row):
            break
        rows.append(row)
    return header, rows


def _is_cell(cell: str) -> bool:
    cell = cell.strip()
    if not cell:
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_number(value: Any) -> bool:
    """A JSON number, null, or a non-finite float as to_json writes it ("nan", "inf")."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return True
    return isinstance(value, str) and value in ("nan", "inf", "-inf")


def _check_tree(tree: Any, path: Path, depth: int = 0) -> None:
    """Plain data only: string keys, no `_target_`, nested at most MAX_DEPTH deep."""
    if depth > MAX_DEPTH:
        raise RecordError(f"{path} is nested more than {MAX_DEPTH} levels deep; it is not a "
                          "file cvlab wrote")
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise RecordError(f"{path}: key {key!r} is not a string")
            if key == "_target_":
                raise RecordError(f"{path} names an object to instantiate (_target_: "
                                  f"{str(value)[:60]!r}); cvlab never instantiates one from a "
                                  "run folder")
            _check_tree(value, path, depth + 1)
    elif isinstance(tree, list):
        for value in tree:
            _check_tree(value, path, depth + 1)
