"""A tiny CIFAR-10 written by the tests in the official on-disk layouts.

10 classes, 6 training and 2 test images per class, of smooth random images (4x4 blocks of
colour, so they survive JPEG), saved as the official pickled batches, the official tar.gz,
PNG and JPEG image-folder trees, and archives of a tree.
"""

from __future__ import annotations

import pickle
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from cvlab.data.constants import CIFAR10_CLASS_NAMES

PER_CLASS_TRAIN, PER_CLASS_TEST = 6, 2
CLASS_NAMES = list(CIFAR10_CLASS_NAMES)


def smooth_images(n: int, seed: int) -> np.ndarray:
    """(n, 3, 32, 32) uint8 images that survive JPEG well (4x4 blocks of colour, upsampled)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(30, 226, size=(n, 3, 4, 4)).astype(np.uint8)
    return np.ascontiguousarray(coarse.repeat(8, axis=2).repeat(8, axis=3))


class Tiny:
    """A tiny CIFAR-10 in memory: train and test arrays, in class order and shuffled."""

    def __init__(self, seed: int = 0) -> None:
        self.train_by_class = smooth_images(10 * PER_CLASS_TRAIN, seed).reshape(
            10, PER_CLASS_TRAIN, 3, 32, 32)
        self.test_by_class = smooth_images(10 * PER_CLASS_TEST, seed + 1).reshape(
            10, PER_CLASS_TEST, 3, 32, 32)
        rng = np.random.default_rng(seed + 2)
        self.y_train = rng.permutation(np.repeat(np.arange(10), PER_CLASS_TRAIN))
        self.y_test = rng.permutation(np.repeat(np.arange(10), PER_CLASS_TEST))
        # Shuffled order (as in the batches): the k-th image of class c for each label.
        self.X_train = self._shuffled(self.train_by_class, self.y_train)
        self.X_test = self._shuffled(self.test_by_class, self.y_test)

    @staticmethod
    def _shuffled(by_class: np.ndarray, labels: np.ndarray) -> np.ndarray:
        seen = np.zeros(10, dtype=int)
        out = []
        for label in labels:
            out.append(by_class[label, seen[label]])
            seen[label] += 1
        return np.stack(out)


def write_batches(folder: Path, tiny: Tiny) -> Path:
    """The official python version: 5 data batches, test_batch, batches.meta (bytes keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    per_batch = len(tiny.y_train) // 5
    for i in range(5):
        rows = slice(i * per_batch, (i + 1) * per_batch)
        _dump(folder / f"data_batch_{i + 1}", tiny.X_train[rows], tiny.y_train[rows],
              f"training batch {i + 1} of 5")
    _dump(folder / "test_batch", tiny.X_test, tiny.y_test, "testing batch 1 of 1")
    meta = {b"num_cases_per_batch": per_batch, b"num_vis": 3072,
            b"label_names": [name.encode() for name in CLASS_NAMES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def _dump(path: Path, X: np.ndarray, y: np.ndarray, label: str) -> None:
    batch = {b"batch_label": label.encode(), b"labels": [int(v) for v in y],
             b"data": X.reshape(len(X), 3072),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(X))]}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def write_official_targz(root: Path, tiny: Tiny) -> Path:
    staging = write_batches(root.parent / "staging" / "cifar-10-batches-py", tiny)
    archive = root / "cifar-10-python.tar.gz"
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname="cifar-10-batches-py")
    shutil.rmtree(staging.parent)
    return archive


def write_tree(top: Path, tiny: Tiny, suffix: str = ".png") -> Path:
    from PIL import Image

    for split, by_class in (("train", tiny.train_by_class), ("test", tiny.test_by_class)):
        for label, name in enumerate(CLASS_NAMES):
            folder = top / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k, image in enumerate(by_class[label]):
                Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{k:04d}{suffix}",
                                                               quality=95, subsampling=0)
    return top


def archive_tree(tree: Path, archive: Path, top_folder: str | None) -> Path:
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    prefix = f"{top_folder}/" if top_folder else ""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w") as z:
            for path in files:
                z.write(path, prefix + path.relative_to(tree).as_posix())
    else:
        mode = {".xz": "w:xz", ".gz": "w:gz", ".tar": "w"}[archive.suffix]
        with tarfile.open(archive, mode) as tar:
            for path in reversed(files):  # member order must not matter
                tar.add(path, prefix + path.relative_to(tree).as_posix())
    return archive


def by_class_order(by_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = by_class.reshape(-1, 3, 32, 32)
    y = np.repeat(np.arange(10), by_class.shape[1])
    return X, y
