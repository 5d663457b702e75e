"""Train / validation / test splits and the course's preprocessing.

Images are uint8 arrays shaped (N, C, H, W) = (N, 3, 32, 32); labels are int64 (N,).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cvlab.errors import UserError


@dataclass
class Splits:
    """The three splits of one dataset, as uint8 images and int64 labels.

    X_* are C-contiguous uint8 arrays (N, 3, 32, 32); y_* int64 arrays (N,).
    `name` is the dataset actually used ("cifar10" | "synthetic"), `source` where it came from.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    name: str
    source: str
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def describe(self) -> str:
        s = self.sizes()
        counts = f"{s['train']} train / {s['val']} val / {s['test']} test"
        return f"{self.name} ({counts}) from {self.source}"


def split_permutation(num_images: int, split_seed: int) -> np.ndarray:
    """The fixed, seeded permutation of a training set that the splits are cut from."""
    return np.random.default_rng(split_seed).permutation(num_images)


def test_permutation(num_images: int, split_seed: int) -> np.ndarray:
    """Fixed permutation applied to a class-sorted test set (another stream than the train one)."""
    return np.random.default_rng([split_seed, 1]).permutation(num_images)


def make_splits(
    X_train_all: np.ndarray,
    y_train_all: np.ndarray,
    X_test_all: np.ndarray,
    y_test_all: np.ndarray,
    num_train: int,
    num_val: int,
    num_test: int,
    split_seed: int,
    test_is_sorted: bool,
    dataset: str,
) -> tuple[np.ndarray, ...]:
    """Cut the splits as the course does.

    Validation = the last `num_val` images of a fixed permutation (seed `split_seed`) of the
    training set; train = the first `num_train` of that permutation; test = the first
    `num_test` test images (after a fixed permutation when the source is sorted by class).
    Inputs may be memory maps; the outputs are in-memory C-contiguous copies.
    """
    available = len(y_train_all)
    if num_train + num_val > available:
        raise UserError(
            f"dataset.num_train + dataset.num_val = {num_train} + {num_val} = "
            f"{num_train + num_val} is more than the {available} training images of {dataset}; "
            "lower dataset.num_train / dataset.num_val"
            + (" or raise dataset.synthetic_train" if dataset == "synthetic" else "")
        )
    if num_test > len(y_test_all):
        raise UserError(
            f"dataset.num_test={num_test} is more than the {len(y_test_all)} test images of "
            f"{dataset}; lower dataset.num_test"
            + (" or raise dataset.synthetic_test" if dataset == "synthetic" else "")
        )
    order = split_permutation(available, split_seed)
    train_idx = order[:num_train]
    val_idx = order[available - num_val:] if num_val else order[:0]
    if test_is_sorted:
        test_idx = test_permutation(len(y_test_all), split_seed)[:num_test]
    else:
        test_idx = np.arange(num_test)
    return (
        _take(X_train_all, train_idx), _take(y_train_all, train_idx).astype(np.int64),
        _take(X_train_all, val_idx), _take(y_train_all, val_idx).astype(np.int64),
        _take(X_test_all, test_idx), _take(y_test_all, test_idx).astype(np.int64),
    )


def _take(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """array[index] as an in-memory C-contiguous copy (also from a memory map)."""
    index = np.asarray(index, dtype=np.int64)
    if len(index) and np.all(index[1:] == index[:-1] + 1):
        return np.array(array[index[0]: index[-1] + 1], order="C")
    return np.ascontiguousarray(array[index])


def mean_image(X: np.ndarray) -> np.ndarray:
    """Mean image (C, H, W) of uint8 images (N, C, H, W), accumulated in float64."""
    return np.mean(X, axis=0, dtype=np.float64)


def channel_mean_std(X: np.ndarray, scale: float = 255.0,
                     block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (C,) of images (N, C, H, W), divided by `scale` (0-1 by default).

    Exact sums in float64 over blocks of `block` images (no float64 copy of the whole set).
    """
    N, C = X.shape[:2]
    total = np.zeros(C)
    total_sq = np.zeros(C)
    for start in range(0, N, block):
        part = np.asarray(X[start:start + block], dtype=np.float64).reshape(-1, C, X[0, 0].size)
        total += part.sum(axis=(0, 2))
        total_sq += np.einsum("ncp,ncp->c", part, part)
    count = N * X[0, 0].size
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean / scale, std / scale


def preprocess(
    splits: Splits, subtract_mean: bool = True, dtype: type | str = np.float32
) -> dict[str, np.ndarray]:
    """Course-style data dict: X_* as `dtype` (N, C, H, W) minus the mean training image.

    Returns {'X_train', 'y_train', 'X_val', 'y_val', 'X_test', 'y_test'}; labels stay int64.
    The mean image is computed in float64 and cast to `dtype` before subtracting, so no
    float64 copy of a split is ever made.
    """
    dtype = np.dtype(dtype)
    mean = mean_image(splits.X_train).astype(dtype) if subtract_mean else None
    data: dict[str, np.ndarray] = {}
    for part in ("train", "val", "test"):
        X = getattr(splits, f"X_{part}").astype(dtype)
        if mean is not None:
            X -= mean
        data[f"X_{part}"] = X
        data[f"y_{part}"] = np.asarray(getattr(splits, f"y_{part}"), dtype=np.int64)
    return data
