"""A verified on-disk cache of decoded arrays (.npy files, memory-mapped when loaded).

One cache folder holds one entry: `meta.json` (the key it was built for, and per array its
shape, dtype, byte size and CRC-32) plus one `<name>.npy` per array. Files are written
atomically (temporary name, then rename) under a lock, so parallel runs never read a
half-written cache. Every load checks the key and every file's size, header and CRC-32 (a
file whose bytes rot while its size and mtime stay the same is caught too): a stale or
corrupt entry is never used: load_or_build rebuilds it (and says why). A folder that cannot
be locked or written (a full disk, a read-only folder) leaves the arrays uncached, and the
entry says why (`Entry.cache_error`). The temporary files a process killed while saving left
behind (`.<name>-<random>.tmp`) are removed when the cache is next loaded or built, by a
process that holds the lock: no live process is writing them then.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.paths import cache_home
from cvlab.records.files import atomic_write, atomic_write_text

META = "meta.json"
FORMAT = 2
# The key of a dataset's info (RawData.info, Splits.info) that says why its decoded arrays are
# not in the cache (Entry.cache_error); a run records it in its summary (load.cache_details).
CACHE_ERROR = "cache_error"


def fingerprint(files: Iterable[Path], base: Path | None = None) -> str:
    """Hash of the (relative path, size, mtime) of each file: changes when a source changes."""
    digest = hashlib.sha1()
    for path in sorted(files):
        stat = path.stat()
        name = str(path.relative_to(base)) if base is not None else str(path)
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def tree_fingerprint(top: Path) -> tuple[str, int]:
    """Fingerprint and file count of every file under `top`: (relative path, size, mtime)."""
    digest = hashlib.sha1()
    count = 0
    stack = [(top, "")]
    while stack:
        folder, prefix = stack.pop()
        entries = []
        with os.scandir(folder) as it:
            for entry in it:
                name = entry.name
                if name[0] == ".":
                    continue
                if entry.is_dir():
                    stack.append((Path(entry.path), f"{prefix}{name}/"))
                else:
                    stat = entry.stat()
                    entries.append((name, stat.st_size, stat.st_mtime_ns))
        entries.sort()
        count += len(entries)
        digest.update(repr((prefix, entries)).encode())
        stack.sort(reverse=True)  # visit folders in name order: a stable digest
    return digest.hexdigest(), count


def cache_dir_for(root: Path, dataset: str) -> Path:
    """Cache folder of a dataset found under `root`.

    `<root>/.cvlab-cache/` when the root is writable, else a folder under cvlab's cache home
    named after the root's absolute path.
    """
    beside = root / ".cvlab-cache"
    writable = os.access(beside, os.W_OK) if beside.is_dir() else (
        root.is_dir() and os.access(root, os.W_OK))
    if writable:
        return beside
    tag = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    return cache_home() / dataset / tag


def crc32_file(path: Path) -> int:
    """CRC-32 of a file's bytes (through a read-only memory map: no copy)."""
    with path.open("rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return 0
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return zlib.crc32(view)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """np.save into a temporary file beside `path`, fsync, then rename it over `path`."""
    atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False),
                 binary=True)


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))


TEMPORARY_PATTERN = ".*.tmp"  # what records.files.atomic_file names a file while it writes


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[bool]:
    """Exclusive lock on `folder` (a `.lock` file) while building its cache entry; yields
    whether the lock is held (False where there are no locks: not POSIX)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: atomic renames still keep readers safe
        yield False
        return
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_temporaries(folder: Path) -> list[str]:
    """Remove the temporary files of interrupted saves in `folder`; the caller holds its lock
    (every save happens under it). The names removed (those that could be)."""
    removed = []
    for path in sorted(folder.glob(TEMPORARY_PATTERN)):
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path.name)
    return removed


def remove_stale_temporaries(folder: Path) -> list[str]:
    """remove_temporaries when the folder's lock is free (taken without waiting: a process
    that holds it may be writing them); nothing when it is held, or cannot be taken here."""
    if not folder.is_dir() or not any(folder.glob(TEMPORARY_PATTERN)):
        return []
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock tells a live writer's files from stale ones
        return []
    try:
        handle = open(folder / ".lock", "a+")
    except OSError:  # a folder this process cannot write: nothing it could remove either
        return []
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a process that builds the entry now
            return []
        try:
            return remove_temporaries(folder)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class CacheProblem(Exception):
    """A cache file that cannot be used; the message says which and why."""


def open_verified(path: Path, spec: dict[str, Any]) -> np.ndarray:
    """Memory-map `path` and check it against its recorded spec; raise CacheProblem if not.

    Checks the size, the .npy header (shape, dtype) and the CRC-32 of the file's bytes: the
    header read from disk, then the very pages of the returned memory map, so the array
    handed back is the one verified. About 0.1 s for the 184 MB of CIFAR-10 (zlib's CRC-32
    runs at 1-2 GB/s).
    """
    try:
        if not path.is_file():
            raise CacheProblem(f"{path.name} is missing")
        if path.stat().st_size != spec["bytes"]:
            raise CacheProblem(f"{path.name} has the wrong size")
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        if list(array.shape) != list(spec["shape"]) or str(array.dtype) != spec["dtype"]:
            raise CacheProblem(f"{path.name} has the wrong shape or dtype")
        offset = getattr(array, "offset", None)
        if not isinstance(array, np.memmap) or offset is None \
                or offset + array.nbytes != spec["bytes"]:
            raise CacheProblem(f"{path.name} is not a plain .npy array file")
        with path.open("rb") as f:
            header = f.read(offset)
        crc = zlib.crc32(header)
        if array.nbytes:
            crc = zlib.crc32(array, crc)
        if crc != spec["crc32"]:
            raise CacheProblem(f"{path.name} fails its checksum")
    except (OSError, ValueError, KeyError, TypeError, BufferError) as err:
        raise CacheProblem(f"{path.name} is unreadable ({err})") from None
    return array


Loaded = tuple[dict[str, np.ndarray], dict[str, Any]]  # arrays, metadata


@dataclass
class Entry:
    """What load_or_build gives: the arrays and metadata, whether they were built now, and
    the error that kept them out of the cache, if any."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    built: bool = False
    save_error: OSError | None = None

    @property
    def cache_error(self) -> str | None:
        """Why the built arrays are not in the cache (the OS error and its file), or None."""
        err = self.save_error
        if err is None:
            return None
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror}{where}" if err.strerror else str(err)


class ArrayCache:
    """One cache entry in `folder`: arrays keyed by name, valid for one `key`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def read_meta(self) -> dict[str, Any] | None:
        try:
            meta = json.loads((self.folder / META).read_text())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) and meta.get("cache_format") == FORMAT else None

    def verify(self, key: str) -> tuple[str, str | None, Loaded | None]:
        """(state, why, loaded): state 'missing', 'stale' (built for another source), 'corrupt'
        (why says which file and what is wrong) or 'valid'; loaded = (verified memory-mapped
        arrays, metadata) when valid. Every file's checksum is checked (see open_verified)."""
        meta = self.read_meta()
        if meta is None:
            return "missing", None, None
        if meta.get("key") != key:
            return "stale", None, None
        try:
            return "valid", None, (self._open_all(meta), meta)
        except CacheProblem as problem:
            return "corrupt", str(problem), None

    def check(self, key: str) -> tuple[str, str | None]:
        """(state, why) of verify."""
        state, why, _ = self.verify(key)
        return state, why

    def load(self, key: str) -> Loaded | None:
        """The verified arrays and metadata, or None when missing, stale or corrupt."""
        return self.verify(key)[2]

    def load_or_build(self, key: str, build: Callable[[str], Loaded]) -> Entry:
        """The entry for `key`: loaded when valid; else, under the folder's lock (checked again
        there: another process may have built it meanwhile), build(why) makes (arrays, extra
        metadata) and they are saved. `why` says why the cache was not used ('' when there was
        none). A folder that cannot be locked or written leaves the built arrays uncached
        (`save_error`). Temporary files of interrupted saves are removed on the way."""
        loaded = self.load(key)
        if loaded is not None:
            remove_stale_temporaries(self.folder)
            return Entry(*loaded)
        try:
            lock: Any = locked(self.folder)
            held = lock.__enter__()
        except OSError as err:
            lock, lock_error = None, err
        try:
            if lock is not None and held:
                remove_temporaries(self.folder)
            state, problem, loaded = self.verify(key)
            if loaded is not None:
                return Entry(*loaded)
            why = {"stale": " (the source changed)",
                   "corrupt": f" (the cache was corrupt: {problem})"}.get(state, "")
            arrays, extra = build(why)
            if lock is None:  # saved only under the lock: the rule remove_temporaries needs
                return Entry(arrays, extra, built=True, save_error=lock_error)
            try:
                meta = self.save(key, arrays, **extra)
            except OSError as err:
                return Entry(arrays, extra, built=True, save_error=err)
            return Entry(arrays, meta, built=True)
        finally:
            if lock is not None:
                lock.__exit__(None, None, None)

    def _open_all(self, meta: dict[str, Any]) -> dict[str, np.ndarray]:
        specs = meta.get("arrays")
        if not isinstance(specs, dict):
            raise CacheProblem(f"{META} lists no arrays")
        return {name: open_verified(self.folder / f"{name}.npy", spec)
                for name, spec in specs.items()}

    def save(self, key: str, arrays: dict[str, np.ndarray], **extra: Any) -> dict[str, Any]:
        """Write every array, then the metadata last (its presence marks a complete entry)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            (self.folder / META).unlink()
        specs = {}
        for name, array in arrays.items():
            path = self.folder / f"{name}.npy"
            atomic_save_npy(path, array)
            specs[name] = {"shape": list(array.shape), "dtype": str(array.dtype),
                           "bytes": path.stat().st_size, "crc32": crc32_file(path)}
        meta = {"cache_format": FORMAT, "key": key, "arrays": specs, **extra}
        atomic_write_json(self.folder / META, meta)
        return meta
