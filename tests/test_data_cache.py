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
