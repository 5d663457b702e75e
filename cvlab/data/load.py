"""`load_splits`: the dataset named by a DatasetConfig, as train / val / test splits."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvlab.data import cifar10, synthetic
from cvlab.data.cache import CACHE_ERROR, ArrayCache, Loaded
from cvlab.data.constants import AUTO, IMAGE_DATASETS
from cvlab.data.raw import RawData
from cvlab.data.splits import Splits, make_splits
from cvlab.errors import UserError
from cvlab.paths import cache_home

if TYPE_CHECKING:  # the schema sits one floor up; the loader reads its fields
    from cvlab.config.train import DatasetConfig

Announce = Callable[[str], None]

# Smaller synthetic sets are generated on every load (well under a second) instead of cached.
SYNTHETIC_CACHE_MIN_IMAGES = 10_000


def cache_details(info: dict[str, Any]) -> dict[str, str]:
    """What a run's summary.json records about its dataset's cache (its `details`):
    `dataset_cache_error` when the cache could not be written, else nothing."""
    error = info.get(CACHE_ERROR)
    return {"dataset_cache_error": str(error)} if error else {}


def load_splits(cfg: DatasetConfig, announce: Announce = print) -> Splits:
    """Load the dataset of `cfg` (a DatasetConfig) and cut its splits.

    cfg.name "auto": CIFAR-10 when found locally, else the synthetic set (said in one line
    through `announce`); "cifar10": CIFAR-10 or a UserError (downloads when cfg.download);
    "synthetic": the embedded synthetic set.
    """
    name = cfg.name
    if name == AUTO:
        root = cifar10.resolve_root(cfg.root)
        if cifar10.find_source(root) is not None:
            name = "cifar10"
        else:
            announce(
                f"dataset: CIFAR-10 not found under {root}; using the embedded synthetic set "
                f"(seed {cfg.synthetic_seed}). `cvlab data fetch dataset=cifar10` downloads it."
            )
            name = "synthetic"
    if name == "cifar10":
        data = cifar10.load_arrays(cfg.root, download=cfg.download, announce=announce)
    elif name == "synthetic":
        data = load_synthetic_arrays(cfg.synthetic_train, cfg.synthetic_test, cfg.synthetic_seed,
                                     announce=announce)
    else:
        raise UserError(f"dataset.name={name!r} has no image splits; use one of "
                        f"{', '.join((AUTO, *IMAGE_DATASETS))} (captioning sets load through "
                        "their own commands)")
    X_train, y_train, X_val, y_val, X_test, y_test = make_splits(
        data.X_train, data.y_train, data.X_test, data.y_test,
        num_train=cfg.num_train, num_val=cfg.num_val, num_test=cfg.num_test,
        split_seed=cfg.split_seed, test_is_sorted=data.test_is_sorted, dataset=name,
    )
    splits = Splits(X_train, y_train, X_val, y_val, X_test, y_test,
                    class_names=list(data.class_names), name=name, source=data.source,
                    info=dict(data.info))
    if cfg.name != AUTO or name == "cifar10":
        announce(f"dataset: {splits.describe()}")
    return splits


def synthetic_cache_dir(num_train: int, num_test: int, seed: int) -> Path:
    return (cache_home() / "synthetic"
            / f"v{synthetic.VERSION}-seed{seed}-train{num_train}-test{num_test}")


def synthetic_key(num_train: int, num_test: int, seed: int) -> str:
    return f"synthetic-v{synthetic.VERSION}-{seed}-{num_train}-{num_test}"


def load_synthetic_arrays(num_train: int, num_test: int, seed: int,
                          announce: Announce = print) -> RawData:
    """The synthetic set, from its cache when one is valid, else generated (and cached)."""
    source = f"embedded synthetic set (seed {seed}, {num_train} train / {num_test} test)"
    names = synthetic.CLASS_NAMES
    if num_train + num_test < SYNTHETIC_CACHE_MIN_IMAGES:
        X_train, y_train, X_test, y_test = synthetic.generate_splits(num_train, num_test, seed)
        return RawData(X_train, y_train, X_test, y_test, names, source,
                       info={"cache": "not cached (small set)"})
    folder = synthetic_cache_dir(num_train, num_test, seed)

    def generate(_: str) -> Loaded:
        start = time.perf_counter()
        X_train, y_train, X_test, y_test = synthetic.generate_splits(num_train, num_test, seed)
        return ({"X_train": X_train, "y_train": y_train, "X_test": X_test, "y_test": y_test},
                {"class_names": names, "source": source,
                 "generated_s": round(time.perf_counter() - start, 2)})

    entry = ArrayCache(folder).load_or_build(synthetic_key(num_train, num_test, seed), generate)
    info: dict[str, Any] = {"cache": str(folder)}
    if entry.cache_error is not None:  # a full disk, a read-only cache home: generated each load
        announce(f"dataset: could not write the cache in {folder} ({entry.cache_error}); "
                 "using the generated set uncached: every run generates it again")
        info = {"cache": "not written", CACHE_ERROR: entry.cache_error}
    elif entry.built:
        seconds = entry.meta["generated_s"]
        announce(f"dataset: generated the synthetic set in {seconds:.1f} s; cached in {folder}")
        info["generated_s"] = seconds
    arrays = entry.arrays
    return RawData(arrays["X_train"], arrays["y_train"], arrays["X_test"], arrays["y_test"],
                   names, source, info=info)
