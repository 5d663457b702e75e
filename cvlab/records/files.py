"""A run folder's files: their names, written once here, and the atomic writes every file goes
through.

Every run writes into one folder (passed down as a Path):
    config.yaml     the resolved config (every field, with its effective value)
    metrics.csv     one flushed row per update, readable while the run goes on
    summary.json    a RunSummary: status, family, dataset, final metrics, times
    checkpoint.npz  the training state at the last epoch end (cvlab.records.state)
    model.npz, model_best.npz   the weights of the last update and of the best evaluation
    <command>.log   the log
A sweep folder holds one such folder per job (0/, 1/, ...), sweep_plan.json (every job, written
before the first starts) and, when it ends, sweep_summary.csv and sweep_summary.json.

Every file cvlab writes goes through `atomic_file` (a temporary file beside the target, fsync,
rename; the temporary file is removed on any failure), except metrics.csv, which is an
append-only log flushed row by row.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from cvlab.errors import UserError

CONFIG_NAME = "config.yaml"
SUMMARY_NAME = "summary.json"
METRICS_NAME = "metrics.csv"
CHECKPOINT_NAME = "checkpoint.npz"
MODEL_NAME = "model.npz"  # the weights of the last update
MODEL_BEST_NAME = "model_best.npz"  # the weights of the best evaluation (classification)
WEIGHT_FILES = {"model": MODEL_NAME, "model_best": MODEL_BEST_NAME}
EVAL_NAME = "eval.json"
SAMPLES_NAME = "samples.json"  # captioning: generated and reference captions
ERROR_LOG = "error.log"
SWEEP_PLAN = "sweep_plan.json"
SWEEP_SUMMARY_JSON = "sweep_summary.json"
SWEEP_SUMMARY_CSV = "sweep_summary.csv"


class RecordError(UserError):
    """A file of a run folder that cannot be used: missing, damaged, foreign or tampered with
    (one line naming the file and what is wrong)."""


@contextlib.contextmanager
def atomic_file(path: Path, binary: bool = False) -> Iterator[IO[Any]]:
    """A file object whose content replaces `path` only when the block ends without error.

    The data goes to a temporary file beside `path`, is flushed and fsynced, then renamed over
    `path`; readers never see a half-written file, and on any failure (a full disk, an
    exception, Ctrl-C) the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The name is chosen before the file exists, so that a signal arriving at any point (even
    # while the file is being created) finds it in the cleanup below.
    tmp = path.parent / f".{path.name}-{secrets.token_hex(4)}.tmp"
    try:
        handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "wb" if binary else "w", **({} if binary else {"newline": ""})) \
                as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:  # say which file
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise


def atomic_write(path: Path, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Call `write(file)` on an atomic_file for `path`."""
    with atomic_file(path, binary=binary) as f:
        write(f)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_file(path) as f:
        f.write(text)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to one dict with dotted keys (the leaves as they are)."""
    if not isinstance(tree, dict):
        return {prefix[:-1]: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def to_json(value: Any) -> str:
    """JSON text of `value` (numpy scalars as numbers, non-finite floats as strings)."""
    return json.dumps(_clean(value), indent=2) + "\n"


def _clean(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


