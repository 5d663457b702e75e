"""`cvlab data info | fetch`: what datasets are found where, and downloading CIFAR-10 (or COCO).

`info` prints, per dataset, where it looked, what it found (format, counts) and the state of
its cache (every checksum verified); the captioning sets join the listing through the
`info(root) -> list[dict]` function of their module (cvlab.data.coco,
cvlab.data.shapes_captions). `fetch` downloads with torchvision's utilities (checksum
verified) and never overwrites or deletes a file it did not create; offline it fails with
one line (exit 2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cvlab.config.commands import DataConfig
from cvlab.data import cifar10, coco, shapes_captions, synthetic
from cvlab.data.cache import ArrayCache
from cvlab.data.constants import AUTO, CAPTION_DATASETS
from cvlab.data.load import SYNTHETIC_CACHE_MIN_IMAGES, synthetic_cache_dir, synthetic_key
from cvlab.errors import UserError

log = logging.getLogger(__name__)

# Modules that add rows to `cvlab data info` through `info(root) -> list[dict]`.
INFO_MODULES = (coco, shapes_captions)


def main(cfg: DataConfig, run_dir: Path, overrides: list[str] | None = None) -> int:
    """Run `cvlab data <action>` with a validated DataConfig (it produces no run folder:
    `info` prints, `fetch` writes into the data root)."""
    if cfg.action == "info":
        log.info(format_info(collect_info(cfg.dataset)))
        return 0
    if cfg.action == "fetch":
        fetch(cfg.dataset, announce=_announce)
        return 0
    raise UserError(f"action={cfg.action!r} is not allowed: one of info, fetch")


def _announce(line: str) -> None:
    log.info(line)  # the console and the run's log file


def collect_info(dataset: Any) -> list[dict[str, Any]]:
    """Info rows of every dataset (or only `dataset.name` when it names one)."""
    wanted = dataset.name
    rows: list[dict[str, Any]] = []
    if wanted in (AUTO, "cifar10"):
        rows += cifar10.info(dataset.root)
    if wanted in (AUTO, "synthetic"):
        rows += synthetic_info(dataset)
    if wanted in (AUTO, *CAPTION_DATASETS):
        root = dataset.root if wanted in CAPTION_DATASETS else None
        for module in INFO_MODULES:
            for row in module.info(root):
                if wanted != AUTO and row.get("dataset") != wanted:
                    continue
                if row not in rows:
                    rows.append(row)
    if wanted == AUTO:
        chosen = "cifar10" if cifar10.find_source(cifar10.resolve_root(dataset.root)) \
            else "synthetic"
        for row in rows:
            if row.get("dataset") == chosen:
                row["used by dataset=auto"] = "yes"
                break
    return rows


def synthetic_info(dataset: Any) -> list[dict[str, Any]]:
    n_train, n_test, seed = dataset.synthetic_train, dataset.synthetic_test, dataset.synthetic_seed
    found = (f"embedded, generated from seed {seed}: {n_train} train / {n_test} test images in "
             f"{synthetic.NUM_CLASSES} classes ({', '.join(synthetic.CLASS_NAMES)})")
    if n_train + n_test < SYNTHETIC_CACHE_MIN_IMAGES:
        cache = "not cached (small sets are generated on each load)"
    else:
        folder = synthetic_cache_dir(n_train, n_test, seed)
        state, problem = ArrayCache(folder).check(synthetic_key(n_train, n_test, seed))
        cache = {"valid": f"valid, checksums verified ({folder})",
                 "missing": f"not built yet ({folder}); generated and cached on first use",
                 "stale": f"stale ({folder}); regenerated on next use",
                 "corrupt": f"corrupt ({folder}: {problem}); regenerated on next use"}[state]
    return [{"dataset": "synthetic", "looked in": "(nothing to look for: rendered in memory)",
             "found": found, "cache": cache}]


def format_info(rows: list[dict[str, Any]]) -> str:
    """One block per row: the dataset name, then `key: value` lines."""
    lines = []
    for row in rows:
        lines.append(str(row.get("dataset", "?")))
        fields = {k: v for k, v in row.items() if k != "dataset"}
        width = max((len(k) for k in fields), default=0)
        lines += [f"  {k:<{width}} : {v}" for k, v in fields.items()]
    return "\n".join(lines)


def fetch(dataset: Any, announce: Callable[[str], None] = print) -> Path | None:
    """Download the dataset named by `dataset.name` (auto means CIFAR-10)."""
    name = dataset.name
    if name in (AUTO, "cifar10"):
        return cifar10.fetch(dataset.root, announce=announce)
    if name == "synthetic":
        announce("dataset: nothing to fetch: the synthetic set is generated locally")
        return None
    if name == "coco":
        path = coco.fetch_coco(dataset.root, announce=announce)
        announce(f"dataset: COCO captioning ready at {path}")
        return path
    announce(f"dataset: nothing to fetch: {name} is generated locally on first use")
    return None
