"""Checkpoint files that cannot run code when read: one zip of .npy arrays and a state.json.

    save_state(path, tree)      tree: nested dicts / lists / tuples of numbers, strings, None,
                                numpy arrays and scalars, and torch tensors
    tree = load_state(path)     the same tree back (tensors come back as torch tensors)

The file (`checkpoint.npz`, `model.npz`, ...) is a standard .npz archive: every array is a
`.npy` member (read with allow_pickle=False, so object arrays are refused), and the structure,
scalars, strings and RNG states are one JSON member, `state.json` (`unzip -p checkpoint.npz
state.json` shows it). Nothing in it is unpickled, so a tampered file cannot execute code: it
is refused with one line (StateError) naming the file and what is wrong.

JSON cannot say everything a training state holds; these markers keep it exact:
    {"__array__": "a12"}                        the array member a12.npy
    {"__tensor__": "a3"}                        a torch tensor (stored as the array a3.npy)
    {"__scalar__": "float32", "value": 0.5}     a numpy scalar with its dtype
    {"__tuple__": [...]}                        a tuple
    {"__items__": [[key, value], ...]}          a dict whose keys are not all strings
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.records.files import RecordError, atomic_file

FORMAT = "cvlab-state"
WEIGHTS_KIND = "weights"  # model.npz, model_best.npz: {"family", "model_type", "weights"}
VERSION = 1
STATE_MEMBER = "state.json"
MARKERS = ("__array__", "__tensor__", "__scalar__", "__tuple__", "__items__")


class StateError(RecordError):
    """A checkpoint or weights file that is missing, damaged, foreign or tampered with."""


def save_state(path: Path, tree: Mapping[str, Any], kind: str = "checkpoint") -> None:
    """Write `tree` to `path` (an .npz archive) atomically; `kind` is recorded and checked."""
    arrays: dict[str, np.ndarray] = {}
    document = {"format": FORMAT, "version": VERSION, "kind": kind,
                "tree": _encode(tree, arrays)}
    with atomic_file(Path(path), binary=True) as f, \
            zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(STATE_MEMBER, json.dumps(document, allow_nan=True))
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def save_weights(path: Path, family: str, model_type: str, weights: Mapping[str, Any]) -> None:
    """A weights file (model.npz, model_best.npz): the model's state with its family and type."""
    save_state(path, {"family": family, "model_type": model_type, "weights": weights},
               kind=WEIGHTS_KIND)


def load_state(path: Path, kind: str = "checkpoint") -> dict[str, Any]:
    """The tree saved by save_state at `path`; StateError (one line) when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise StateError(f"{path} does not exist")
    if not zipfile.is_zipfile(path):
        raise StateError(f"{path} is not a cvlab {kind} file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if STATE_MEMBER not in archive.files:
                raise StateError(f"{path} is not a cvlab {kind} file (no {STATE_MEMBER} in it)")
            document = json.loads(archive[STATE_MEMBER])
            _check_document(document, path, kind)
            names = {n for n in archive.files if n != STATE_MEMBER}
            return _decode(document["tree"], _ArrayReader(archive, names, path))
    except StateError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError,
            RecursionError) as err:
        raise StateError(f"{path} cannot be read as a cvlab {kind} file "
                         f"({type(err).__name__}: {err})") from None


def _check_document(document: Any, path: Path, kind: str) -> None:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StateError(f"{path} is not a cvlab {kind} file (its {STATE_MEMBER} has no "
                         f"format {FORMAT!r})")
    if document.get("version") != VERSION:
        raise StateError(f"{path} has format version {document.get('version')!r}; this "
                         f"cvlab reads version {VERSION}")
    if document.get("kind") != kind:
        raise StateError(f"{path} holds a {document.get('kind')!r} state, not a {kind!r}")


class _ArrayReader:
    def __init__(self, archive: Any, names: set[str], path: Path) -> None:
        self.archive, self.names, self.path = archive, names, path

    def __call__(self, name: Any) -> np.ndarray:
        if not isinstance(name, str) or name not in self.names:
            raise StateError(f"{self.path} refers to an array {name!r} it does not hold")
        return self.archive[name]


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        if isinstance(value, (np.bool_, np.integer, np.floating)):
            return {"__scalar__": value.dtype.name, "value": value.item()}
        raise TypeError(f"cannot store a numpy {value.dtype} scalar in a state file")
    if isinstance(value, np.ndarray):
        return {"__array__": _store(np.ascontiguousarray(value), arrays)}
    if _is_tensor(value):
        array = value.detach().cpu().numpy()
        return {"__tensor__": _store(np.ascontiguousarray(array), arrays)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and k not in MARKERS for k in value):
            return {k: _encode(v, arrays) for k, v in value.items()}
        return {"__items__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    raise TypeError(f"cannot store a {type(value).__name__} in a state file")


def _store(array: np.ndarray, arrays: dict[str, np.ndarray]) -> str:
    if array.dtype.hasobject:
        raise TypeError("cannot store an object array in a state file")
    name = f"a{len(arrays)}"
    arrays[name] = array
    return name


def _is_tensor(value: Any) -> bool:
    """A torch tensor, told without importing torch (numpy-only runs never load it)."""
    return type(value).__module__.startswith("torch") and type(value).__name__ in (
        "Tensor", "Parameter")


def as_array(value: Any) -> np.ndarray | None:
    """A numpy array or torch tensor (on any device) as a numpy array; None for anything else."""
    if isinstance(value, np.ndarray):
        return value
    if _is_tensor(value):
        return value.detach().float().cpu().numpy()
    return None


def _decode(value: Any, read: _ArrayReader) -> Any:
    if isinstance(value, list):
        return [_decode(v, read) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return read(value["__array__"])
    if "__tensor__" in value:
        import torch

        return torch.from_numpy(np.array(read(value["__tensor__"])))
    if "__scalar__" in value:
        return np.dtype(_plain_dtype(value["__scalar__"], read.path)).type(value["value"])
    if "__tuple__" in value:
        return tuple(_decode(v, read) for v in value["__tuple__"])
    if "__items__" in value:
        return {_hashable(_decode(k, read)): _decode(v, read) for k, v in value["__items__"]}
    return {k: _decode(v, read) for k, v in value.items()}


def _plain_dtype(name: Any, path: Path) -> str:
    if not isinstance(name, str) or np.dtype(name).kind not in "biuf":
        raise StateError(f"{path} holds a scalar of unsupported type {name!r}")
    return name


def _hashable(key: Any) -> Any:
    if isinstance(key, (list, dict)):
        raise TypeError(f"unhashable key {key!r}")
    return key

