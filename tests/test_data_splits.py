"""load_splits (auto / cifar10 / synthetic), the course's splits and preprocess."""

from __future__ import annotations

import numpy as np
import pytest

from cvlab.config.train import DatasetConfig
from cvlab.data import Splits, channel_mean_std, load_splits, make_splits, preprocess
from cvlab.data.splits import split_permutation
from cvlab.errors import UserError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CVLAB_CACHE", str(tmp_path / "cache-home"))
    monkeypatch.setenv("CVLAB_DATA", str(tmp_path / "data-home"))


def small(name: str, **kw) -> DatasetConfig:
    values = dict(name=name, synthetic_train=700, synthetic_test=200, num_train=500,
                  num_val=100, num_test=150)
    values.update(kw)
    return DatasetConfig(**values)


def class_sorted(n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose first pixel encodes their index (0..N-1 over 2 bytes), sorted by class."""
    y = np.repeat(np.arange(10), n_per_class)
    X = np.zeros((len(y), 3, 32, 32), np.uint8)
    X[:, 0, 0, 0] = np.arange(len(y)) // 256
    X[:, 0, 0, 1] = np.arange(len(y)) % 256
    return X, y


def index_of(X: np.ndarray) -> np.ndarray:
    return X[:, 0, 0, 0].astype(int) * 256 + X[:, 0, 0, 1]


def test_validation_is_the_last_part_of_a_seeded_permutation():
    X, y = class_sorted(100)
    X_test, y_test = class_sorted(20)
    parts = make_splits(X, y, X_test, y_test, num_train=700, num_val=200, num_test=100,
                        split_seed=3, test_is_sorted=True, dataset="x")
    X_tr, y_tr, X_val, y_val, X_te, y_te = parts
    order = split_permutation(1000, 3)
    assert np.array_equal(index_of(X_val), order[-200:])
    assert np.array_equal(index_of(X_tr), order[:700])
    assert np.array_equal(y_val, y[order[-200:]]) and y_val.dtype == np.int64
    assert not set(index_of(X_tr)) & set(index_of(X_val))
    # Class-sorted sources still give mixed validation and test splits.
    assert np.bincount(y_val, minlength=10).min() >= 10
    assert np.bincount(y_te, minlength=10).min() >= 3
    assert all(a.flags.c_contiguous for a in parts)
    # Same seed, same splits; another seed, another validation set.
    again = make_splits(X, y, X_test, y_test, 700, 200, 100, 3, True, "x")
    assert np.array_equal(again[2], X_val)
    other = make_splits(X, y, X_test, y_test, 700, 200, 100, 4, True, "x")
    assert not np.array_equal(other[2], X_val)


def test_unsorted_test_set_keeps_its_first_images():
    X, y = class_sorted(10)
    parts = make_splits(X, y, X, y, 50, 10, 30, 0, test_is_sorted=False, dataset="x")
    assert np.array_equal(index_of(parts[4]), np.arange(30))


@pytest.mark.parametrize("sizes, message", [
    ((95, 10, 5), "num_train \\+ dataset.num_val = 95 \\+ 10 = 105 is more than the 100"),
    ((50, 10, 101), "num_test=101 is more than the 100 test images"),
])
def test_asking_for_more_images_than_exist_is_a_user_error(sizes, message):
    X, y = class_sorted(10)
    with pytest.raises(UserError, match=message):
        make_splits(X, y, X, y, *sizes, split_seed=0, test_is_sorted=False, dataset="x")


def test_too_large_synthetic_split_says_how_to_fix_it():
    with pytest.raises(UserError, match="raise dataset.synthetic_train"):
        load_splits(small("synthetic", num_train=650), announce=lambda line: None)


def test_auto_without_cifar_falls_back_to_synthetic_and_says_so(tmp_path):
    lines: list[str] = []
    splits = load_splits(small("auto"), announce=lines.append)
    assert isinstance(splits, Splits) and splits.name == "synthetic"
    assert len(lines) == 1
    assert "CIFAR-10 not found under" in lines[0] and str(tmp_path / "data-home") in lines[0]
    assert "synthetic" in lines[0]
    assert splits.X_train.shape == (500, 3, 32, 32) and splits.X_test.shape == (150, 3, 32, 32)


def test_auto_uses_cifar10_when_present(tmp_path):
    from cifar10_fixtures import Tiny, write_tree

    write_tree(tmp_path / "data-home" / "cifar10", Tiny(), ".png")
    lines: list[str] = []
    splits = load_splits(small("auto", num_train=50, num_val=10, num_test=20),
                         announce=lines.append)
    assert splits.name == "cifar10" and "image-folder tree" in splits.source
    assert splits.class_names[0] == "airplane" and splits.X_val.shape == (10, 3, 32, 32)
    assert any("cifar10" in line for line in lines)


def test_explicit_cifar10_never_falls_back(tmp_path):
    with pytest.raises(UserError) as err:
        load_splits(small("cifar10"), announce=lambda line: None)
    assert str(tmp_path / "data-home" / "cifar10") in str(err.value)
    assert "cvlab data fetch dataset=cifar10" in str(err.value)


def test_dataset_root_overrides_the_data_home(tmp_path):
    from cifar10_fixtures import Tiny, write_batches

    write_batches(tmp_path / "elsewhere" / "cifar-10-batches-py", Tiny())
    splits = load_splits(small("cifar10", root=str(tmp_path / "elsewhere"), num_train=50,
                               num_val=10, num_test=20), announce=lambda line: None)
    assert splits.name == "cifar10" and "elsewhere" in splits.source


def test_preprocess_matches_the_course_recipe():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, 60)
    splits = Splits(X[:40], y[:40], X[40:50], y[40:50], X[50:], y[50:], list("abcdefghij"),
                    "synthetic", "test")
    data = preprocess(splits)
    assert set(data) == {"X_train", "y_train", "X_val", "y_val", "X_test", "y_test"}
    mean = X[:40].astype(np.float64).mean(axis=0)  # oracle: the course's numpy recipe
    for part, rows in (("train", slice(0, 40)), ("val", slice(40, 50)), ("test", slice(50, 60))):
        assert data[f"X_{part}"].dtype == np.float32
        expected = X[rows].astype(np.float64) - mean
        np.testing.assert_allclose(data[f"X_{part}"], expected, atol=1e-4)
        assert data[f"y_{part}"].dtype == np.int64
    as64 = preprocess(splits, dtype=np.float64)
    np.testing.assert_allclose(as64["X_val"], X[40:50] - mean, atol=1e-12)
    raw = preprocess(splits, subtract_mean=False)
    assert np.array_equal(raw["X_test"], X[50:].astype(np.float32))


def test_channel_mean_std_against_numpy():
    X = np.random.default_rng(1).integers(0, 256, (30, 3, 32, 32), dtype=np.uint8)
    mean, std = channel_mean_std(X)
    as_float = X.astype(np.float64) / 255
    np.testing.assert_allclose(mean, as_float.mean(axis=(0, 2, 3)), atol=1e-12)
    np.testing.assert_allclose(std, as_float.std(axis=(0, 2, 3)), atol=1e-9)
