"""The decoded-array cache is verified on every load: bytes that rot while the file's size and
mtime stay the same are caught, reported by `cvlab data info` and rebuilt; nothing in a cache
file is ever unpickled."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from cifar10_fixtures import Tiny, write_batches

from cvlab.data import cifar10
from cvlab.data.cache import META, ArrayCache
from cvlab.data.load import load_synthetic_arrays, synthetic_cache_dir


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CVLAB_CACHE", str(tmp_path / "cache-home"))
    monkeypatch.setenv("CVLAB_DATA", str(tmp_path / "data-home"))
    monkeypatch.setenv(cifar10.URL_ENV, "http://127.0.0.1:9/cifar-10-python.tar.gz")


def rot(path: Path, offset: int, flip: int = 0x5A) -> None:
    """Flip bits of one byte of `path` in place, keeping its size and mtime (as bit rot
    would)."""
    stat = path.stat()
    raw = bytearray(path.read_bytes())
    raw[offset] ^= flip
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_mtime_ns == stat.st_mtime_ns and path.stat().st_size == stat.st_size


@pytest.mark.parametrize("where", ["pixels", "header"])
def test_rotten_bytes_with_the_same_mtime_are_caught(tmp_path, where):
    cache = ArrayCache(tmp_path / "cache")
    X = np.arange(4 * 3 * 8 * 8, dtype=np.uint8).reshape(4, 3, 8, 8)
    cache.save("k", {"X": X, "y": np.arange(4)})
    arrays, _ = cache.load("k")
    assert np.array_equal(arrays["X"], X) and isinstance(arrays["X"], np.memmap)
    del arrays
    path = tmp_path / "cache" / "X.npy"
    if where == "pixels":
        rot(path, 300)
    else:  # a space of the header's padding turned into a tab: numpy still parses it
        assert path.read_bytes()[120:121] == b" "
        rot(path, 120, flip=ord(" ") ^ ord("\t"))
    assert cache.load("k") is None
    assert cache.check("k") == ("corrupt", "X.npy fails its checksum")


def test_rotten_cifar10_cache_is_reported_and_rebuilt(tmp_path, cvlab):
    tiny = Tiny()
    root = tmp_path / "data-home" / "cifar10"
    write_batches(root / "cifar-10-batches-py", tiny)
    cifar10.load_arrays(root, announce=lambda line: None)
    rot(root / ".cvlab-cache" / "X_train.npy", 5000)

    info = cvlab("data", "info", "dataset=cifar10", f"outputs_root={tmp_path / 'outputs'}")
    assert info.returncode == 0, info.stderr
    assert "corrupt" in info.stdout and "X_train.npy fails its checksum" in info.stdout
    assert "rebuilt on next use" in info.stdout

    lines: list[str] = []
    data = cifar10.load_arrays(root, announce=lines.append)
    assert any("the cache was corrupt: X_train.npy fails its checksum" in line for line in lines)
    assert np.array_equal(data.X_train, tiny.X_train)
    again: list[str] = []
    cifar10.load_arrays(root, announce=again.append)
    assert not again  # rebuilt once, valid since

    info = cvlab("data", "info", "dataset=cifar10", f"outputs_root={tmp_path / 'outputs'}")
    assert "valid, checksums verified" in info.stdout


def test_rotten_synthetic_cache_is_regenerated(tmp_path):
    first = load_synthetic_arrays(9000, 1000, seed=0, announce=lambda line: None)
    expected = np.array(first.X_test)
    del first
    rot(synthetic_cache_dir(9000, 1000, 0) / "X_test.npy", 10_000)
    lines: list[str] = []
    again = load_synthetic_arrays(9000, 1000, seed=0, announce=lines.append)
    assert any("generated the synthetic set" in line for line in lines)
    assert np.array_equal(again.X_test, expected)


class Payload:
    """Unpickling this object would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickled_cache_file_is_never_unpickled(tmp_path):
    """An object array (a pickle inside the .npy) with metadata that matches it exactly."""
    marker = tmp_path / "marker"
    folder = tmp_path / "cache"
    folder.mkdir()
    path = folder / "X.npy"
    hostile = np.empty(1, dtype=object)
    hostile[0] = Payload(marker)
    np.save(path, hostile, allow_pickle=True)
    assert b"touch" in path.read_bytes()  # the payload is in the file, as a pickle
    meta = {"cache_format": 2, "key": "k",
            "arrays": {"X": {"shape": [1], "dtype": "object", "bytes": path.stat().st_size,
                             "crc32": zlib.crc32(path.read_bytes())}}}
    (folder / META).write_text(json.dumps(meta))
    cache = ArrayCache(folder)
    assert cache.load("k") is None
    state, why = cache.check("k")
    assert state == "corrupt" and "X.npy" in why
    assert not marker.exists()


def failing_save(path: Path, array: np.ndarray) -> None:
    """A save into a disk that fills up halfway through the file (as atomic_save_npy writes
    it: the temporary file is removed by the failing write)."""
    import errno

    from cvlab.records.files import atomic_write

    def write(f) -> None:
        f.write(b"\x93NUMPY partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    atomic_write(path, write, binary=True)


def test_a_cache_that_cannot_be_written_is_said_in_one_line(tmp_path, monkeypatch):
    from cvlab.data import cache as cache_module

    monkeypatch.setattr(cache_module, "atomic_save_npy", failing_save)
    for _ in range(2):  # every load generates the set again, and says so again
        lines: list[str] = []
        data = load_synthetic_arrays(9000, 1000, seed=5, announce=lines.append)
        (line,) = [line for line in lines if "could not write the cache" in line]
        folder = synthetic_cache_dir(9000, 1000, 5)
        assert f"in {folder} (No space left on device: {folder}" in line
        assert "every run generates it again" in line
        assert data.info["cache_error"].startswith("No space left on device: ")
        assert len(data.y_train) == 9000
        assert not list(folder.glob(".*.tmp")) and not (folder / META).exists()


def test_a_read_only_cache_folder_is_said_in_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder anyway (the write is simulated above)")
    folder = synthetic_cache_dir(9000, 1000, 6)
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    try:
        lines: list[str] = []
        data = load_synthetic_arrays(9000, 1000, seed=6, announce=lines.append)
    finally:
        folder.chmod(0o755)
    assert any("could not write the cache" in line and "Permission denied" in line
               for line in lines)
    assert "Permission denied" in data.info["cache_error"]


def test_a_cache_folder_that_cannot_be_made_is_said_in_one_line(tmp_path, monkeypatch):
    """A cache home that is a file: no folder can be made (or locked) there, for root too."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("CVLAB_CACHE", str(blocker))
    lines: list[str] = []
    data = load_synthetic_arrays(9000, 1000, seed=6, announce=lines.append)
    (line,) = [line for line in lines if "could not write the cache" in line]
    assert "Not a directory" in line and "Not a directory" in data.info["cache_error"]
    assert len(data.y_test) == 1000


def test_a_run_whose_cache_cannot_be_written_records_it(tmp_path, monkeypatch, cvlab):
    from cvlab.data import cache as cache_module
    from cvlab.families import numpy as numpy_family

    monkeypatch.setattr(cache_module, "atomic_save_npy", failing_save)
    monkeypatch.setattr(numpy_family, "_DATA_CACHE", {})  # no decoded set kept from before
    result = cvlab("train", "dataset=synthetic", "dataset.synthetic_train=9000",
                   "dataset.synthetic_test=1000", "dataset.synthetic_seed=7",
                   "dataset.num_train=100", "dataset.num_val=50", "dataset.num_test=50",
                   "model.hidden_dims=[10]", "epochs=1", "launcher=basic",
                   env={"CVLAB_CACHE": str(tmp_path / "cache-home")})
    assert result.returncode == 0, result.stderr
    assert "could not write the cache" in result.stdout + result.stderr
    (summary,) = (tmp_path / "outputs").rglob("summary.json")
    recorded = json.loads(summary.read_text())
    assert recorded["status"] == "completed"
    assert recorded["details"]["dataset_cache_error"].startswith("No space left on device: ")


def plant_temporary(folder: Path, name: str = ".X_train.npy-0badcafe.tmp") -> Path:
    """What a process killed while it saved the cache leaves behind."""
    path = folder / name
    path.write_bytes(b"\x93NUMPY cut short")
    return path


def test_stale_temporary_files_are_removed_when_the_cache_is_built_or_loaded(tmp_path):
    folder = synthetic_cache_dir(9000, 1000, 8)
    folder.mkdir(parents=True)
    killed_build = plant_temporary(folder)
    load_synthetic_arrays(9000, 1000, seed=8, announce=lambda line: None)  # builds it
    assert not killed_build.exists() and (folder / META).is_file()

    killed_later = plant_temporary(folder, ".meta.json-12345678.tmp")
    lines: list[str] = []
    load_synthetic_arrays(9000, 1000, seed=8, announce=lines.append)  # a valid cache, loaded
    assert not killed_later.exists() and not lines


def test_a_temporary_file_being_written_under_the_lock_is_kept(tmp_path):
    import fcntl

    cache = ArrayCache(tmp_path / "cache")
    cache.save("k", {"X": np.arange(6, dtype=np.uint8)})
    live = plant_temporary(cache.folder)
    with open(cache.folder / ".lock", "a+") as builder:  # another process building the entry
        fcntl.flock(builder, fcntl.LOCK_EX)
        entry = cache.load_or_build("k", lambda why: pytest.fail("a valid cache is not built"))
        assert live.exists() and not entry.built
        fcntl.flock(builder, fcntl.LOCK_UN)
    cache.load_or_build("k", lambda why: pytest.fail("a valid cache is not built"))
    assert not live.exists()
