"""Checkpoints of numpy training runs: one pickle written atomically, plus the params as .npz.

checkpoint.pkl holds everything `Solver.resume` needs to continue exactly where the run
stopped (params, model buffers such as batchnorm running statistics, optimizer configs,
histories, best params, rng states, epoch and iteration). params.npz holds the model's
parameters (W1, b1, ...) as plain arrays, for plots and for loading into a fresh model.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.errors import UserError

CHECKPOINT_NAME = "checkpoint.pkl"
PARAMS_NAME = "params.npz"
FORMAT_VERSION = 1


def _atomic_replace(path: Path, write: Any) -> None:
    """Call `write(file)` on a temporary file next to `path`, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        write(f)
    os.replace(tmp, path)


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """Pickle `state` (with a format version) to `path` atomically."""
    payload = {"format_version": FORMAT_VERSION, **state}
    _atomic_replace(Path(path), lambda f: pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state saved by save_checkpoint; a missing or unreadable file is a UserError."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; resume= takes a run folder that holds "
                        f"{CHECKPOINT_NAME} (written at each epoch end)")
    try:
        with path.open("rb") as f:
            state = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as err:
        raise UserError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path} is not a cvlab numpy checkpoint (format {FORMAT_VERSION})")
    return state


def save_params(path: Path, params: Mapping[str, np.ndarray]) -> None:
    """Write the model parameters to an .npz file atomically (one array per name)."""
    arrays = {name: np.asarray(value) for name, value in params.items()}
    _atomic_replace(Path(path), lambda f: np.savez(f, **arrays))


def load_params(path: Path) -> dict[str, np.ndarray]:
    """The arrays saved by save_params."""
    with np.load(Path(path)) as data:
        return {name: data[name] for name in data.files}
