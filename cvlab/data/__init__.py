"""Datasets: CIFAR-10 (several on-disk formats, decoded once into a verified cache) and the
embedded synthetic set, cut into the course's train / val / test splits.

    from cvlab.data import load_splits, preprocess
    splits = load_splits(dataset_cfg)           # Splits: uint8 X (N, 3, 32, 32), int64 y
    data = preprocess(splits)                   # course dict, float32, mean image subtracted
"""

from cvlab.data.constants import (
    CIFAR10_CLASS_NAMES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATASET_NAMES,
)
from cvlab.data.load import load_splits
from cvlab.data.raw import RawData
from cvlab.data.splits import (
    Splits,
    channel_mean_std,
    make_splits,
    mean_image,
    preprocess,
)

__all__ = [
    "CIFAR10_CLASS_NAMES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASET_NAMES",
    "RawData",
    "Splits",
    "channel_mean_std",
    "load_splits",
    "make_splits",
    "mean_image",
    "preprocess",
]
