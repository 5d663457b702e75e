"""Real CIFAR-10 (under $CVLAB_DATA/cifar10; skipped when absent): splits, counts, statistics."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import real_cifar_root, requires_cifar

from cvlab.config.train import DatasetConfig
from cvlab.data import channel_mean_std, cifar10, load_splits

pytestmark = [pytest.mark.slow, requires_cifar]

COURSE_MEAN = (125.3, 123.0, 113.9)


@pytest.fixture(scope="module")
def splits():
    return load_splits(DatasetConfig(name="cifar10", root=str(real_cifar_root())),
                       announce=lambda line: None)


def test_course_split_shapes(splits):
    assert splits.name == "cifar10"
    assert splits.X_train.shape == (49000, 3, 32, 32) and splits.X_train.dtype == np.uint8
    assert splits.X_val.shape == (1000, 3, 32, 32) and splits.X_test.shape == (1000, 3, 32, 32)
    assert splits.y_train.shape == (49000,) and splits.y_train.dtype == np.int64
    assert splits.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                  "horse", "ship", "truck"]


def test_5000_training_images_per_class():
    data = cifar10.load_arrays(real_cifar_root(), announce=lambda line: None)
    assert np.array_equal(np.bincount(data.y_train), np.full(10, 5000))
    assert np.array_equal(np.bincount(data.y_test), np.full(10, 1000))


def test_per_channel_mean_matches_the_course(splits):
    mean, _ = channel_mean_std(splits.X_train, scale=1.0)
    assert np.all(np.abs(mean - np.array(COURSE_MEAN)) < 1.0), mean


def test_validation_and_test_splits_are_class_balanced(splits):
    for labels in (splits.y_val, splits.y_test):
        counts = np.bincount(labels, minlength=10)
        assert counts.min() >= 70 and counts.max() <= 130, counts  # 100 expected each


def test_cached_load_is_fast_and_reported(capsys, splits):
    root = real_cifar_root()
    cache = cifar10.cache_for(root)
    key = cifar10.source_key(cifar10.find_source(root))
    times, checks = [], []
    for _ in range(5):
        start = time.perf_counter()
        again = load_splits(DatasetConfig(name="cifar10", root=str(root)),
                            announce=lambda line: None)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert cache.load(key) is not None  # every file's size, header and CRC-32 verified
        checks.append(time.perf_counter() - start)
    with capsys.disabled():
        print(f"\nCIFAR-10 cached load_splits (49000/1000/1000): median {np.median(times):.2f} s "
              f"of {[round(t, 2) for t in times]}; of which the cache check (184 MB, CRC-32): "
              f"median {np.median(checks):.3f} s")
    assert np.array_equal(again.X_val, splits.X_val)  # same fixed permutation every time


def test_cli_data_info_reports_the_real_cifar10(cvlab, tmp_path):
    root = real_cifar_root()
    result = cvlab("data", "info", f"outputs_root={tmp_path / 'outputs'}",
                   env={"CVLAB_DATA": str(root.parent)})
    assert result.returncode == 0, result.stderr
    assert str(root) in result.stdout
    assert "50000 train / 10000 test" in result.stdout
