"""Checkpoint files that cannot run code when read: one zip of .npy arrays and a state.json.

    save_state(path, tree)      tree: nested dicts / lists / tuples of numbers, strings, None,
                                numpy arrays and scalars, and torch tensors
    tree = load_state(path)     the same tree back (tensors come back as torch tensors)
    check_state(path)           the same checks without loading the arrays (cheap)

The file (`checkpoint.npz`, `model.npz`, ...) is a standard .npz archive: every array is a
`.npy` member (read with allow_pickle=False, so object arrays are refused), and the structure,
scalars, strings and RNG states are one JSON member, `state.json` (`unzip -p checkpoint.npz
state.json` shows it). Nothing in it is unpickled, so a tampered file cannot execute code: it
is refused with one line (StateError) naming the file and what is wrong: a state.json that
is not one, nests more than MAX_DEPTH levels, or refers to arrays the archive lacks, and
arrays of Python objects.

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
import zlib
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
MAX_DEPTH = 64  # nesting a state.json (or a config or summary) may have; a real one has < 12
MAX_STATE_BYTES = 256 * 2**20  # a real state.json is kilobytes (a long run's losses: a few MB)
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                  (2, 0): np.lib.format.read_array_header_2_0}
# what reading a damaged archive raises (zlib.error: a corrupt compressed member;
# NotImplementedError: a compression method zipfile does not know)
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError,
               RecursionError, zlib.error, NotImplementedError)


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
    _check_archive(path, kind)
    try:
        with zipfile.ZipFile(path) as archive:
            tree = _structure(archive, path, kind)
            return _decode(tree, _ArrayReader(archive, path))
    except StateError:
        raise
    except READ_ERRORS as err:
        raise StateError(f"{path} cannot be read as a cvlab {kind} file "
                         f"({type(err).__name__}: {err})") from None


def check_state(path: Path, kind: str = "checkpoint") -> dict[str, Any]:
    """Check the state file at `path` as load_state would, without loading its arrays: its
    state.json (format, version, kind, nesting) and the header of every array it refers to
    (present, not an array of Python objects). Returns the structure as stored (JSON, the
    arrays as their markers); StateError (one line) when the file cannot be used."""
    path = Path(path)
    _check_archive(path, kind)
    try:
        with zipfile.ZipFile(path) as archive:
            tree = _structure(archive, path, kind)
            for name in _array_names(tree, path):
                _check_array_header(archive, name, path)
            return tree
    except StateError:
        raise
    except READ_ERRORS as err:
        raise StateError(f"{path} cannot be read as a cvlab {kind} file "
                         f"({type(err).__name__}: {err})") from None


def _check_archive(path: Path, kind: str) -> None:
    if not path.is_file():
        raise StateError(f"{path} does not exist")
    if not zipfile.is_zipfile(path):
        raise StateError(f"{path} is not a cvlab {kind} file (not an .npz archive)")


def _structure(archive: zipfile.ZipFile, path: Path, kind: str) -> Any:
    """The checked `tree` of the archive's state.json (arrays still as their markers)."""
    if STATE_MEMBER not in archive.namelist():
        raise StateError(f"{path} is not a cvlab {kind} file (no {STATE_MEMBER} in it)")
    if archive.getinfo(STATE_MEMBER).file_size > MAX_STATE_BYTES:
        raise StateError(f"{path}: its {STATE_MEMBER} is larger than "
                         f"{MAX_STATE_BYTES // 2**20} MiB; it is not a cvlab {kind} file")
    try:
        document = json.loads(archive.read(STATE_MEMBER))
    except RecursionError:
        document = None
    if document is None or _deeper_than(document, MAX_DEPTH):
        raise StateError(f"{path}: its {STATE_MEMBER} is nested more than {MAX_DEPTH} levels "
                         f"deep; it is not a cvlab {kind} file")
    _check_document(document, path, kind)
    return document["tree"]


def _check_document(document: Any, path: Path, kind: str) -> None:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StateError(f"{path} is not a cvlab {kind} file (its {STATE_MEMBER} has no "
                         f"format {FORMAT!r})")
    if document.get("version") != VERSION:
        raise StateError(f"{path} has format version {document.get('version')!r}; this "
                         f"cvlab reads version {VERSION}")
    if document.get("kind") != kind:
        raise StateError(f"{path} holds a {document.get('kind')!r} state, not a {kind!r}")
    if "tree" not in document:
        raise StateError(f"{path} is not a cvlab {kind} file (its {STATE_MEMBER} has no tree)")


def _deeper_than(tree: Any, limit: int) -> bool:
    """Whether lists and dicts in `tree` nest more than `limit` levels (no recursion)."""
    pending = [(tree, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            pending += [(child, depth + 1) for child in value.values()]
        elif isinstance(value, list):
            pending += [(child, depth + 1) for child in value]
    return False


def _array_names(tree: Any, path: Path) -> list[str]:
    """The array members (`a3`) the structure refers to, in no particular order."""
    names, pending = [], [tree]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            for marker in ("__array__", "__tensor__"):
                if marker in value:
                    if not isinstance(value[marker], str):
                        raise StateError(f"{path} refers to an array {value[marker]!r} it "
                                         "does not hold")
                    names.append(value[marker])
            pending += list(value.values())
        elif isinstance(value, list):
            pending += value
    return names


def _check_array_header(archive: zipfile.ZipFile, name: str, path: Path) -> None:
    """The .npy member `name` exists and its header declares an array of plain numbers."""
    member = f"{name}.npy"
    if member not in archive.namelist():
        raise StateError(f"{path} refers to an array {name!r} it does not hold")
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version not in HEADER_READERS:
            raise StateError(f"{path}: {member} has .npy format version {version}, which "
                             "cvlab does not write")
        _, _, dtype = HEADER_READERS[version](stream)
    if dtype.hasobject:
        raise StateError(f"{path}: {member} holds Python objects (reading them would unpickle "
                         "code); cvlab stores arrays of numbers only")


class _ArrayReader:
    """Reads the .npy members of an open archive by name, never unpickling."""

    def __init__(self, archive: zipfile.ZipFile, path: Path) -> None:
        self.archive, self.path = archive, path
        self.members = set(archive.namelist())

    def __call__(self, name: Any) -> np.ndarray:
        if not isinstance(name, str) or f"{name}.npy" not in self.members:
            raise StateError(f"{self.path} refers to an array {name!r} it does not hold")
        with self.archive.open(f"{name}.npy") as stream:
            return np.lib.format.read_array(stream, allow_pickle=False)


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

