"""The runs `cvlab runs` queries: every training run and sweep job under an outputs root, read
through cvlab.records.reader.RunFolder (the one reader of a run folder), newest first.

    index = read_runs(Path("outputs"))
    index.frame            # one row per readable run: summary fields, metrics.*, settings.*
                           # and CONFIG_COLUMN, its config.yaml flattened to dotted keys
    index.unreadable       # (folder, message) of each folder that cannot be read

summary.json is read anew every time (a `running` run's status depends on its process).
config.yaml is checked on every listing too, but parsing YAML is slow (about 3 ms a file), so
its flattened content is kept in a cache, `$CVLAB_CACHE/runs/<root>.json`, keyed by each
folder and a digest of the file's bytes: an entry is used only for a file whose bytes are the
ones it was made from (any change, however small, reads the file again through RunFolder), and
a cache that is missing, damaged or from another cvlab version is simply rebuilt. The files
stay the source of truth; the cache only saves the parsing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvlab.records.files import CONFIG_NAME, SUMMARY_NAME, RecordError, atomic_write_text, flatten
from cvlab.records.folders import job_dirs, run_folders
from cvlab.records.reader import RunFolder
from cvlab.records.summary import METRIC_KEYS, RunSummary

log = logging.getLogger(__name__)

COMMAND = "train"  # the command whose runs are listed
SUMMARY_FIELDS = ("status", "command", "family", "model_type", "experiment", "dataset",
                  "dataset_source", "device", "tags", "wall_time_s", "cpu_time_s", "error",
                  "resumed_from")
CONFIG_COLUMN = "_config"  # each row's flattened config.yaml (a dict)
CACHE_VERSION = 1
PARALLEL_FROM = 500  # configs to parse before the work is spread over the CPU cores


@dataclass
class RunsIndex:
    """The readable runs (a frame, one row each) and the folders that could not be read."""

    root: Path
    frame: Any  # pandas.DataFrame
    readable: int = 0  # runs read (before any where)
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def run_dirs(root: Path) -> list[Path]:
    """Every run folder and sweep job folder of `cvlab train` under `root`, newest first
    (by the date and time in their names, then the job number)."""
    found: list[Path] = []
    for folder, is_sweep in run_folders(root, COMMAND):
        with contextlib.suppress(OSError):  # a sweep folder removed while it is listed
            found += job_dirs(folder) if is_sweep else [folder]
    return found[::-1]


def read_runs(root: Path) -> RunsIndex:
    """Read every run under `root` (see the module's doc); never raises for a bad folder."""
    import pandas as pd

    root = Path(root).expanduser().resolve()
    folders = run_dirs(root)
    cache = ConfigCache(root)
    configs = cache.lookup(folders)
    rows, unreadable = [], []
    for folder in folders:
        name = folder.relative_to(root).as_posix()
        try:
            summary = read_summary(folder)
            config = configs[folder]
            if isinstance(config, str):
                raise RecordError(config)
        except RecordError as err:
            unreadable.append((name, str(err)))
            continue
        rows.append({**summary_row(name, summary), CONFIG_COLUMN: config})
    cache.save()
    frame = pd.DataFrame.from_records(rows) if rows else \
        pd.DataFrame(columns=["folder", *SUMMARY_FIELDS, CONFIG_COLUMN])
    return RunsIndex(root, frame, len(rows), unreadable)


def read_summary(folder: Path) -> RunSummary:
    """The folder's summary.json through RunFolder; RecordError when there is none, and for
    values the reader lets through that cannot be used (a pid too large for the system's
    process table raises OverflowError when the reader asks whether it runs)."""
    path = folder / SUMMARY_NAME
    try:
        summary = RunFolder(folder).summary()
    except (OverflowError, TypeError, ValueError) as err:
        raise RecordError(f"{path} cannot be used ({type(err).__name__}: {err})") from None
    if summary is None:
        raise RecordError(f"{path} does not exist (no run was recorded here)")
    return summary


def summary_row(folder: str, summary: RunSummary) -> dict[str, Any]:
    """One run's row: its folder, the summary's fields, `metrics.<name>` and
    `settings.<name>` (the metrics every family writes as floats, the others as written)."""
    row: dict[str, Any] = {"folder": folder}
    for name in SUMMARY_FIELDS:
        row[name] = getattr(summary, name)
    row["tags"] = tuple(str(tag) for tag in summary.tags)
    for name, value in summary.metrics.items():
        row[f"metrics.{name}"] = summary.metric(name) if name in METRIC_KEYS else value
    for name, value in summary.settings.items():
        row[f"settings.{name}"] = value
    return row


def flat_config(tree: dict[str, Any]) -> dict[str, Any]:
    """A config as dotted keys; a list leaf as one value, written as Hydra spells it, and any
    other leaf that is not a JSON scalar (a date YAML read) as its text."""
    return {key: list_text(value) if isinstance(value, list) else
            value if value is None or isinstance(value, (str, int, float, bool)) else str(value)
            for key, value in flatten(tree).items()}


def list_text(values: list[Any]) -> str:
    """[100,100], [a,b]: a list as an override writes it."""
    return "[" + ",".join(list_text(v) if isinstance(v, list) else str(v) for v in values) + "]"


def read_config(folder: Path) -> dict[str, Any] | str:
    """A run folder's config.yaml flattened, or the RecordError's message."""
    try:
        return flat_config(RunFolder(folder).config())
    except RecordError as err:
        return str(err)


class ConfigCache:
    """The flattened config.yaml of each run folder, by folder and digest of the file's bytes
    (see the module's doc)."""

    def __init__(self, root: Path) -> None:
        from cvlab import __version__
        from cvlab.paths import cache_home

        self.base, self.root = Path(root), Path(root).resolve()
        key = hashlib.blake2b(str(self.root).encode(), digest_size=8).hexdigest()
        self.path = cache_home() / "runs" / f"{key}.json"
        self.header = {"version": CACHE_VERSION, "cvlab": __version__, "root": str(self.root)}
        self.entries = self._load()
        self.changed = False

    def _load(self) -> dict[str, Any]:
        """The stored entries, or none when the cache is missing, damaged or not this one."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            return {}
        if not isinstance(data, dict) or data.get("header") != self.header:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def lookup(self, folders: list[Path]) -> dict[Path, dict[str, Any] | str]:
        """Each folder's flattened config (or the message saying why it cannot be read): from
        the cache when the file's bytes are those of the entry, else read through RunFolder."""
        found: dict[Path, dict[str, Any] | str] = {}
        missing: list[tuple[Path, str, str]] = []
        kept: dict[str, Any] = {}
        for folder in folders:
            key = folder.relative_to(self.base).as_posix()
            digest = file_digest(folder / CONFIG_NAME)
            entry = self.entries.get(key)
            if digest is not None and _valid_entry(entry) and entry["digest"] == digest:
                found[folder] = entry.get("config", entry.get("error"))
                kept[key] = entry
            else:
                missing.append((folder, key, digest))
        results = read_configs([folder for folder, _, _ in missing])
        for (folder, key, digest), result in zip(missing, results):
            found[folder] = result
            if digest is not None:
                kept[key] = {"digest": digest, "config" if isinstance(result, dict)
                             else "error": result}
        self.changed = bool(missing) or len(kept) != len(self.entries)
        self.entries = kept
        return found

    def save(self) -> None:
        """Write the cache when it changed; a cache that cannot be written is left out."""
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps({"header": self.header,
                                                     "entries": self.entries},
                                                    separators=(",", ":"), default=str))
        except OSError as err:
            log.debug("cvlab runs: cache %s not written: %s", self.path, err)


def _valid_entry(entry: Any) -> bool:
    """A cache entry of the stored shape: a digest and a config or an error message."""
    return isinstance(entry, dict) and isinstance(entry.get("digest"), str) and (
        isinstance(entry.get("config"), dict) or isinstance(entry.get("error"), str))


def file_digest(path: Path) -> str | None:
    """A digest of the file's bytes; None when it cannot be read (RunFolder then says why)."""
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    except OSError:
        return None


def read_configs(folders: list[Path]) -> list[dict[str, Any] | str]:
    """read_config of each folder, spread over the CPU cores when there are many."""
    workers = min(os.cpu_count() or 1, 8)
    if len(folders) < PARALLEL_FROM or workers < 2:
        return [read_config(folder) for folder in folders]
    from concurrent.futures import ProcessPoolExecutor

    with contextlib.suppress(OSError, RuntimeError), \
            ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(read_config, folders, chunksize=100))
    return [read_config(folder) for folder in folders]  # no worker processes to be had
