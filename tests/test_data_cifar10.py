"""CIFAR-10 from every on-disk format, written by the tests in the official layouts.

Fixtures: the tiny CIFAR-10 of cifar10_fixtures in every format it ships in, plus truncated
and corrupt copies.
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from cifar10_fixtures import (
    CLASS_NAMES,
    PER_CLASS_TRAIN,
    Tiny,
    archive_tree,
    by_class_order,
    write_batches,
    write_official_targz,
    write_tree,
)

from cvlab.data import cifar10
from cvlab.errors import UserError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CVLAB_CACHE", str(tmp_path / "cache-home"))
    monkeypatch.setenv("CVLAB_DATA", str(tmp_path / "data-home"))
    monkeypatch.setenv(cifar10.URL_ENV, "http://127.0.0.1:9/cifar-10-python.tar.gz")


def load(root: Path, lines: list[str] | None = None):
    return cifar10.load_arrays(root, announce=(lines.append if lines is not None else print))


# ---------------------------------------------------------------------------- formats

def test_official_batch_folder(tmp_path):
    tiny = Tiny()
    write_batches(tmp_path / "root" / "cifar-10-batches-py", tiny)
    data = load(tmp_path / "root")
    assert data.X_train.dtype == np.uint8 and data.X_train.shape == (60, 3, 32, 32)
    assert np.array_equal(data.X_train, tiny.X_train) and np.array_equal(data.y_train, tiny.y_train)
    assert np.array_equal(data.X_test, tiny.X_test) and np.array_equal(data.y_test, tiny.y_test)
    assert data.y_train.dtype == np.int64
    assert data.class_names == CLASS_NAMES and not data.test_is_sorted


def test_official_pixel_layout_is_rgb_planes():
    """A row of the official `data` is 1024 red, then 1024 green, then 1024 blue values."""
    tiny = Tiny()
    row = tiny.X_train[0].reshape(3072)
    from cvlab.data.cifar10_formats import images_from_batch

    X, _ = images_from_batch({"data": row[None], "labels": [1]}, "x")
    assert np.array_equal(X[0, 0].ravel(), row[:1024]) and np.array_equal(X[0, 2, 31], row[-32:])


def test_official_targz(tmp_path):
    tiny = Tiny()
    write_official_targz(tmp_path / "root", tiny)
    data = load(tmp_path / "root")
    assert np.array_equal(data.X_train, tiny.X_train) and np.array_equal(data.y_test, tiny.y_test)


def test_png_tree_labels_follow_sorted_class_folders(tmp_path):
    tiny = Tiny()
    write_tree(tmp_path / "root", tiny, ".png")
    data = load(tmp_path / "root")
    X, y = by_class_order(tiny.train_by_class)
    assert data.class_names == sorted(CLASS_NAMES)
    assert np.array_equal(data.X_train, X) and np.array_equal(data.y_train, y)
    X_test, y_test = by_class_order(tiny.test_by_class)
    assert np.array_equal(data.X_test, X_test) and np.array_equal(data.y_test, y_test)
    assert data.test_is_sorted


def test_jpeg_tree_in_one_subfolder(tmp_path):
    tiny = Tiny()
    write_tree(tmp_path / "root" / "cifar10-images", tiny, ".jpg")
    data = load(tmp_path / "root")
    X, y = by_class_order(tiny.train_by_class)
    assert np.array_equal(data.y_train, y)
    error = np.abs(data.X_train.astype(int) - X.astype(int)).mean()
    assert error < 4, error  # JPEG is lossy, but close on smooth images


@pytest.mark.parametrize("name, top_folder", [
    ("cifar10.zip", "cifar10"), ("cifar10.tar.xz", None), ("cifar10.tar.gz", "CIFAR-10-images"),
    ("cifar10.tar", None),
])
def test_archives_of_a_tree(tmp_path, name, top_folder):
    tiny = Tiny()
    tree = write_tree(tmp_path / "tree", tiny, ".png")
    (tmp_path / "root").mkdir()
    archive_tree(tree, tmp_path / "root" / name, top_folder)
    data = load(tmp_path / "root")
    X, y = by_class_order(tiny.train_by_class)
    assert np.array_equal(data.X_train, X) and np.array_equal(data.y_train, y)
    assert data.class_names == CLASS_NAMES


def test_extracted_copy_is_preferred_to_an_archive(tmp_path):
    tiny = Tiny()
    write_official_targz(tmp_path / "root", tiny)
    write_tree(tmp_path / "root", Tiny(seed=5), ".png")
    sources = cifar10.find_sources(tmp_path / "root")
    assert [s.kind for s in sources] == ["tree", "archive"]


# ---------------------------------------------------------------------------- corrupt sources

def test_truncated_batch_names_the_file(tmp_path):
    folder = write_batches(tmp_path / "root" / "cifar-10-batches-py", Tiny())
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError, match="data_batch_3.*truncated or corrupt"):
        load(tmp_path / "root")


def test_batch_with_foreign_objects_is_refused(tmp_path):
    folder = write_batches(tmp_path / "root" / "cifar-10-batches-py", Tiny())
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Path("x"), b"labels": [1]}))
    with pytest.raises(UserError, match="test_batch"):
        load(tmp_path / "root")


def test_truncated_targz_names_the_archive(tmp_path):
    archive = write_official_targz(tmp_path / "root", Tiny())
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(UserError, match="cifar-10-python.tar.gz"):
        load(tmp_path / "root")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_bad_jpeg_names_the_file(tmp_path, damage):
    tree = write_tree(tmp_path / "root", Tiny(), ".jpg")
    path = tree / "train" / "cat" / "0003.jpg"
    raw = path.read_bytes()
    path.write_bytes(b"not an image at all" if damage == "garbage" else raw[: len(raw) // 2])
    with pytest.raises(UserError, match="cat/0003.jpg"):
        load(tmp_path / "root")


def test_image_of_wrong_size_is_refused(tmp_path):
    from PIL import Image

    tree = write_tree(tmp_path / "root", Tiny(), ".png")
    Image.new("RGB", (64, 64)).save(tree / "test" / "dog" / "0000.png")
    with pytest.raises(UserError, match="dog/0000.png is 64x64"):
        load(tmp_path / "root")


@pytest.mark.parametrize("name", ["cifar10.zip", "cifar10.tar.xz"])
def test_short_archive_names_the_archive(tmp_path, name):
    tree = write_tree(tmp_path / "tree", Tiny(), ".png")
    (tmp_path / "root").mkdir()
    archive = archive_tree(tree, tmp_path / "root" / name, "cifar10")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    with pytest.raises(UserError, match=name.replace(".", r"\.")):
        load(tmp_path / "root")


# ---------------------------------------------------------------------------- the cache

def test_cache_is_reused_memory_mapped_and_beside_the_data(tmp_path):
    tree = write_tree(tmp_path / "root", Tiny(), ".png")
    first: list[str] = []
    load(tmp_path / "root", first)
    assert any("decoding CIFAR-10" in line for line in first)
    second: list[str] = []
    data = load(tmp_path / "root", second)
    assert not any("decoding" in line for line in second)
    assert isinstance(data.X_train, np.memmap)
    assert (tree / ".cvlab-cache" / "meta.json").is_file()
    assert cifar10.cache_for(tmp_path / "root").check(
        cifar10.source_key(cifar10.find_source(tmp_path / "root")))[0] == "valid"


def test_changed_source_invalidates_the_cache(tmp_path):
    from PIL import Image

    tree = write_tree(tmp_path / "root", Tiny(), ".png")
    load(tmp_path / "root", [])
    path = tree / "train" / "airplane" / "0000.png"
    Image.new("RGB", (32, 32), (255, 0, 0)).save(path)
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    lines: list[str] = []
    data = load(tmp_path / "root", lines)
    assert any("the source changed" in line for line in lines)
    assert data.X_train[0, 0].min() == 255 and data.X_train[0, 1].max() == 0


def test_removed_image_invalidates_the_cache(tmp_path):
    tree = write_tree(tmp_path / "root", Tiny(), ".png")
    load(tmp_path / "root", [])
    (tree / "train" / "bird" / "0001.png").unlink()
    data = load(tmp_path / "root", [])
    assert len(data.y_train) == 10 * PER_CLASS_TRAIN - 1


@pytest.mark.parametrize("damage", ["overwrite", "truncate", "delete", "meta"])
def test_corrupt_cache_is_rebuilt_not_used(tmp_path, damage):
    tiny = Tiny()
    write_batches(tmp_path / "root" / "cifar-10-batches-py", tiny)
    load(tmp_path / "root", [])
    cache = tmp_path / "root" / ".cvlab-cache"
    target = cache / "X_train.npy"
    raw = bytearray(target.read_bytes())
    if damage == "overwrite":  # same size, valid header, wrong pixels
        raw[-500:] = bytes(500)
        target.write_bytes(bytes(raw))
    elif damage == "truncate":
        target.write_bytes(bytes(raw[:-3072]))
    elif damage == "delete":
        target.unlink()
    else:
        (cache / "meta.json").write_text("{ not json")
    lines: list[str] = []
    data = load(tmp_path / "root", lines)
    assert any("decoding" in line for line in lines)
    assert np.array_equal(data.X_train, tiny.X_train)


def test_read_only_root_caches_under_the_cache_home(tmp_path, monkeypatch):
    write_batches(tmp_path / "root" / "cifar-10-batches-py", Tiny())
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as if the root were read-only
    data = load(tmp_path / "root", [])
    assert str(tmp_path / "cache-home" / "cifar10") in data.info["cache"]
    assert not (tmp_path / "root" / ".cvlab-cache").exists()


# ---------------------------------------------------------------------------- missing / fetch

def test_missing_cifar10_is_one_clear_user_error(tmp_path):
    with pytest.raises(UserError) as err:
        load(tmp_path / "empty")
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "empty") in message and "cvlab data fetch dataset=cifar10" in message


def test_fetch_offline_fails_clearly_and_leaves_nothing(tmp_path):
    with pytest.raises(UserError, match="could not download CIFAR-10") as err:
        cifar10.fetch(tmp_path / "new", announce=lambda line: None)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "new").exists()


@pytest.mark.slow  # the subprocess imports torchvision (seconds to tens of seconds)
def test_cli_fetch_offline_exit_2_one_line(cvlab, tmp_path):
    result = cvlab("data", "fetch", "dataset=cifar10", f"dataset.root={tmp_path / 'x'}",
                   f"outputs_root={tmp_path / 'outputs'}")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1 and "could not download CIFAR-10" in error_lines[0]


def test_cli_info_reports_format_counts_and_cache(cvlab, tmp_path):
    write_tree(tmp_path / "data-home" / "cifar10", Tiny(), ".png")
    result = cvlab("data", "info", f"outputs_root={tmp_path / 'outputs'}",
                   env={"CVLAB_DATA": str(tmp_path / "data-home"),
                        "CVLAB_CACHE": str(tmp_path / "cache-home")})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "image-folder tree" in out and "60 train / 20 test images in 10 classes" in out
    assert "not built yet" in out and "synthetic" in out


def test_process_pool_decoding_gives_the_same_arrays(tmp_path, monkeypatch):
    from cvlab.data import cifar10_formats

    tree = write_tree(tmp_path / "root", Tiny(), ".png")
    alone = cifar10_formats.read_tree(tree, workers=1)
    monkeypatch.setattr(cifar10_formats, "_POOL_MIN_IMAGES", 0)
    monkeypatch.setattr(cifar10_formats, "_POOL_CHUNK", 7)
    pooled = cifar10_formats.read_tree(tree, workers=2)
    assert np.array_equal(alone.X_train, pooled.X_train)
    assert np.array_equal(alone.X_test, pooled.X_test)
    assert np.array_equal(alone.y_train, pooled.y_train)
