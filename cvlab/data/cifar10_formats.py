"""Readers of the on-disk formats CIFAR-10 ships in; each returns uint8 arrays in memory.

- the official python batches (`cifar-10-batches-py/`: `data_batch_1..5`, `test_batch`,
  `batches.meta`; pickled dicts with bytes keys), also inside an archive (`cifar-10-python.tar.gz`);
- an image-folder tree `train/<class>/*.png|jpg` + `test/<class>/...`, also as a .tar, .tar.gz,
  .tar.xz or .zip archive (the tree possibly under one top folder).

Images come back as (N, 3, 32, 32) uint8 (N, C, H, W), labels as int64. A truncated or corrupt
file raises UserError naming the file.
"""

from __future__ import annotations

import io
import lzma
import multiprocessing
import os
import pickle
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from cvlab.data.constants import CIFAR10_CLASS_NAMES
from cvlab.errors import UserError

BATCH_FOLDER = "cifar-10-batches-py"  # the official archive's folder of batches
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
META_BATCH = "batches.meta"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tar", ".zip")
_POOL_MIN_IMAGES = 4000  # below this, decoding in one process is faster than starting a pool
_POOL_CHUNK = 2000
MAX_WORKERS = 2


@dataclass
class Decoded:
    """A decoded CIFAR-10 copy: training and test images and labels, class names."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    test_is_sorted: bool  # image-folder trees list the test images class by class


def corrupt(path: str | Path, err: BaseException | str, what: str = "CIFAR-10 file") -> UserError:
    detail = err if isinstance(err, str) else f"{type(err).__name__}: {err}".rstrip(": ")
    return UserError(f"{what} {path} is truncated or corrupt ({detail}); replace it with a "
                     "good copy, or move it away and run `cvlab data fetch dataset=cifar10` "
                     "(which sets aside what is incomplete and keeps it)")


# ---------------------------------------------------------------------------- pickled batches

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays (what the official batches contain)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in the batch")
        return super().find_class(module, name)


def unpickle_batch(data: bytes, name: str) -> dict:
    """One pickled batch (bytes keys, as the official Python 2 pickles) as a str-keyed dict."""
    try:
        batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # noqa: BLE001  any unpickling failure means a bad file
        raise corrupt(name, err) from None
    if not isinstance(batch, dict):
        raise corrupt(name, "not a pickled dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in batch.items()}


def images_from_batch(batch: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 32, 32) uint8 images and int64 labels of one batch (rows: 1024 R, G, B)."""
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch.get("labels", batch.get("fine_labels")), dtype=np.int64)
    except (KeyError, TypeError, ValueError) as err:
        raise corrupt(name, f"missing data or labels: {err}") from None
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise corrupt(name, f"data {data.shape} / labels {labels.shape}, expected (N, 3072) / (N,)")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASS_NAMES)):
        raise corrupt(name, "labels outside 0..9")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32)), labels


def class_names_from_meta(data: bytes | None, name: str) -> list[str]:
    if data is None:
        return list(CIFAR10_CLASS_NAMES)
    meta = unpickle_batch(data, name)
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != len(CIFAR10_CLASS_NAMES):
        raise corrupt(name, "no list of 10 label_names")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def decode_batches(read: Callable[[str], bytes | None], where: str) -> Decoded:
    """Decode the official batches; `read(basename)` returns a file's bytes or None."""
    parts = {}
    for name in [*TRAIN_BATCHES, TEST_BATCH]:
        data = read(name)
        if data is None:
            raise UserError(f"CIFAR-10 batch {name} is missing from {where}; fetch it again "
                            "(`cvlab data fetch dataset=cifar10`)")
        parts[name] = images_from_batch(unpickle_batch(data, f"{where}/{name}"), f"{where}/{name}")
    names = class_names_from_meta(read(META_BATCH), f"{where}/{META_BATCH}")
    X_train = np.concatenate([parts[n][0] for n in TRAIN_BATCHES])
    y_train = np.concatenate([parts[n][1] for n in TRAIN_BATCHES])
    X_test, y_test = parts[TEST_BATCH]
    return Decoded(X_train, y_train, X_test, y_test, names, test_is_sorted=False)


def read_batch_folder(folder: Path) -> Decoded:
    """The extracted official python version (`cifar-10-batches-py/`)."""

    def read(name: str) -> bytes | None:
        path = folder / name
        return path.read_bytes() if path.is_file() else None

    return decode_batches(read, str(folder))


# ---------------------------------------------------------------------------- image trees

def decode_image(data: bytes | Path, name: str) -> np.ndarray:
    """One 32x32 image file (PNG/JPEG, path or bytes) as (3, 32, 32) uint8."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            image = image.convert("RGB")
            if image.size != (32, 32):
                raise UserError(f"image {name} is {image.size[0]}x{image.size[1]}; CIFAR-10 "
                                "images are 32x32")
            return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001  Pillow raises many types for bad files
        raise corrupt(name, err, "image") from None


def _decode_chunk(items: list[tuple[str, bytes | str]]) -> tuple[np.ndarray | None, str | None]:
    """Worker: decode (name, bytes-or-path) items; returns (images, None) or (None, error)."""
    out = np.empty((len(items), 3, 32, 32), dtype=np.uint8)
    try:
        for i, (name, data) in enumerate(items):
            out[i] = decode_image(data if isinstance(data, bytes) else Path(data), name)
    except UserError as err:
        return None, str(err)
    return out, None


def decode_images(items: list[tuple[str, bytes | str]], workers: int = MAX_WORKERS) -> np.ndarray:
    """Decode many image files into (N, 3, 32, 32) uint8, with a small process pool if large."""
    chunks = [items[i:i + _POOL_CHUNK] for i in range(0, len(items), _POOL_CHUNK)]
    workers = min(workers, os.cpu_count() or 1, len(chunks))
    results = None
    # fork (where there is one): workers inherit the imports and never re-run __main__.
    if workers > 1 and len(items) >= _POOL_MIN_IMAGES \
            and "fork" in multiprocessing.get_all_start_methods():
        try:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                results = list(pool.map(_decode_chunk, chunks))
        except (BrokenProcessPool, OSError):
            results = None  # no usable pool here: decode in this process
    if results is None:
        results = [_decode_chunk(chunk) for chunk in chunks]
    for _, error in results:
        if error is not None:
            raise UserError(error)
    arrays = [images for images, _ in results if images is not None]
    return np.concatenate(arrays) if arrays else np.empty((0, 3, 32, 32), np.uint8)


def is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_SUFFIXES)


def tree_top(root: Path) -> Path | None:
    """Folder holding `train/` and `test/` class folders: `root` or its single subfolder."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root
    if not root.is_dir():
        return None
    subfolders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.name != BATCH_FOLDER]
    if len(subfolders) == 1 and (subfolders[0] / "train").is_dir() \
            and (subfolders[0] / "test").is_dir():
        return subfolders[0]
    return None


def list_tree(top: Path) -> dict[str, dict[str, list[str]]]:
    """{split: {class: sorted image paths}} of an image-folder tree."""
    listing: dict[str, dict[str, list[str]]] = {}
    for split in ("train", "test"):
        classes = {}
        for folder in sorted(p for p in (top / split).iterdir()
                             if p.is_dir() and not p.name.startswith(".")):
            with os.scandir(folder) as it:
                classes[folder.name] = sorted(e.path for e in it if is_image_name(e.name))
        listing[split] = classes
    return listing


def decode_listing(listing: dict[str, dict[str, list]], where: str,
                   workers: int = MAX_WORKERS) -> Decoded:
    """Decode a {split: {class: [(name, bytes-or-path)]}} listing of a tree (sorted classes)."""
    class_names = sorted(listing.get("train", {}))
    test_names = sorted(listing.get("test", {}))
    if not class_names:
        raise UserError(f"no class folders under train/ in {where}; expected train/<class>/*.png")
    if test_names != class_names:
        raise UserError(f"the class folders of train/ and test/ differ in {where}: "
                        f"{class_names} vs {test_names}")
    empty = [f"{s}/{c}" for s in ("train", "test") for c in class_names if not listing[s][c]]
    if empty:
        raise UserError(f"no .png/.jpg images in {', '.join(empty[:3])} of {where}")
    items, labels = {}, {}
    for split in ("train", "test"):
        items[split] = [item for c in class_names for item in listing[split][c]]
        labels[split] = np.concatenate([np.full(len(listing[split][c]), i, dtype=np.int64)
                                        for i, c in enumerate(class_names)])
    X_all = decode_images(items["train"] + items["test"], workers)
    n_train = len(items["train"])
    return Decoded(X_all[:n_train], labels["train"], X_all[n_train:], labels["test"],
                   class_names, test_is_sorted=True)


def read_tree(top: Path, workers: int = MAX_WORKERS) -> Decoded:
    listing = list_tree(top)
    named = {s: {c: [(p, p) for p in paths] for c, paths in classes.items()}
             for s, classes in listing.items()}
    return decode_listing(named, str(top), workers)


# ---------------------------------------------------------------------------- archives

def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def archive_members(path: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(member name, reader of its bytes) for every regular file, in archive order."""
    if path.name.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield info.filename, (lambda info=info: archive.read(info))
        return
    with tarfile.open(path, mode="r:*") as archive:
        for member in archive:  # streaming: works for compressed tars without seeking back
            if member.isfile():
                handle = archive.extractfile(member)
                yield member.name, (lambda handle=handle: handle.read())


def read_archive(path: Path, workers: int = MAX_WORKERS) -> Decoded:
    """An archive of the official batches or of an image-folder tree."""
    batches: dict[str, bytes] = {}
    tree: dict[str, dict[str, dict[str, list]]] = {}  # prefix -> split -> class -> items
    wanted = {*TRAIN_BATCHES, TEST_BATCH, META_BATCH}
    try:
        for name, read in archive_members(path):
            parts = PurePosixPath(name).parts
            if parts and parts[-1] in wanted:
                batches[parts[-1]] = read()
            elif len(parts) >= 3 and parts[-3] in ("train", "test") and is_image_name(name) \
                    and not any(p.startswith((".", "__MACOSX")) for p in parts):
                prefix = "/".join(parts[:-3])
                split_classes = tree.setdefault(prefix, {"train": {}, "test": {}})[parts[-3]]
                split_classes.setdefault(parts[-2], []).append((f"{path}:{name}", read()))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError,
            lzma.LZMAError, zlib.error) as err:
        raise corrupt(path, err, "archive") from None
    if all(b in batches for b in [*TRAIN_BATCHES, TEST_BATCH]):
        return decode_batches(batches.get, str(path))
    complete = {p: t for p, t in tree.items() if t["train"] and t["test"]}
    if len(complete) == 1:
        (listing,) = complete.values()
        for classes in listing.values():
            for items in classes.values():
                items.sort(key=lambda item: item[0])
        return decode_listing(listing, str(path), workers)
    if len(complete) > 1:
        raise UserError(f"archive {path} holds several image trees "
                        f"({', '.join(sorted(p or '.' for p in complete))}); keep one")
    raise UserError(f"archive {path} holds neither the CIFAR-10 python batches nor a "
                    "train/<class>/*.png + test/<class>/... image tree")

