"""CIFAR-10: find a copy under the root, decode it once into a verified cache, download it.

Root: `dataset.root`, else `$CVLAB_DATA/cifar10`, else `~/.cache/cvlab/cifar10`. Sources, in
order of preference: `cifar-10-batches-py/` (or the batches directly in the root), an
image-folder tree `train/<class>/` + `test/<class>/` (in the root or its one subfolder),
`cifar-10-python.tar.gz`, any other .tar/.tar.gz/.tar.xz/.zip holding either. The decoded
arrays are cached in `<root>/.cvlab-cache/` (or under the cache home when the root is
read-only), keyed by a fingerprint of the source (paths, sizes, mtimes).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvlab.data import cifar10_formats as formats
from cvlab.data.cache import (
    CACHE_ERROR,
    ArrayCache,
    Loaded,
    cache_dir_for,
    fingerprint,
    tree_fingerprint,
)
from cvlab.data.fetching import move_into_place, staging_folder
from cvlab.data.raw import RawData
from cvlab.errors import UserError
from cvlab.paths import dataset_root

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCH_FOLDER = formats.BATCH_FOLDER
URL_ENV = "CVLAB_CIFAR10_URL"  # another mirror of the official archive (same checksum)
DOWNLOAD_TIMEOUT_S = 60

Announce = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    """One copy of CIFAR-10 on disk: `kind` is 'batches', 'tree' or 'archive'."""

    kind: str
    path: Path

    def describe(self) -> str:
        label = {"batches": "python batches", "tree": "image-folder tree",
                 "archive": "archive"}[self.kind]
        return f"{label} {self.path}"


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    return dataset_root("cifar10", root)


def looked_for(root: Path) -> str:
    return (f"{root} (looked for {BATCH_FOLDER}/, train/ + test/ class folders, {ARCHIVE_NAME} "
            "or a .tar/.tar.gz/.tar.xz/.zip of them)")


def not_found(root: Path) -> UserError:
    return UserError(
        f"CIFAR-10 not found under {looked_for(root)}; run `cvlab data fetch dataset=cifar10`, "
        "add dataset.download=true, or point dataset.root (or $CVLAB_DATA) at a copy"
    )


def _has_batches(folder: Path) -> bool:
    return (folder / formats.TRAIN_BATCHES[0]).is_file()


def missing_batches(folder: Path) -> list[str]:
    """The batch files (data_batch_1..5, test_batch) that `folder` lacks."""
    return [name for name in (*formats.TRAIN_BATCHES, formats.TEST_BATCH)
            if not (folder / name).is_file()]


def find_sources(root: Path) -> list[Source]:
    """Every CIFAR-10 copy under `root`, most preferred (fastest to decode) first."""
    if not root.is_dir():
        return []
    sources = []
    if _has_batches(root / BATCH_FOLDER):
        sources.append(Source("batches", root / BATCH_FOLDER))
    if _has_batches(root):
        sources.append(Source("batches", root))
    top = formats.tree_top(root)
    if top is not None:
        sources.append(Source("tree", top))
    archives = sorted((p for p in root.iterdir() if formats.is_archive(p)),
                      key=lambda p: (p.name != ARCHIVE_NAME, p.name))
    sources += [Source("archive", p) for p in archives]
    return sources


def find_source(root: Path) -> Source | None:
    sources = find_sources(root)
    return sources[0] if sources else None


def source_key(source: Source) -> str:
    """Identity of a source's content: its kind, absolute path and file fingerprint."""
    if source.kind == "batches":
        names = [*formats.TRAIN_BATCHES, formats.TEST_BATCH, formats.META_BATCH]
        files = [source.path / n for n in names if (source.path / n).is_file()]
        digest = fingerprint(files, source.path)
    elif source.kind == "tree":
        train, _ = tree_fingerprint(source.path / "train")
        test, _ = tree_fingerprint(source.path / "test")
        digest = f"{train}-{test}"
    else:
        digest = fingerprint([source.path], source.path.parent)
    return f"cifar10:{source.kind}:{source.path.resolve()}:{digest}"


def decode(source: Source) -> formats.Decoded:
    if source.kind == "batches":
        return formats.read_batch_folder(source.path)
    if source.kind == "tree":
        return formats.read_tree(source.path)
    return formats.read_archive(source.path)


def cache_for(root: Path) -> ArrayCache:
    return ArrayCache(cache_dir_for(root, "cifar10"))


def load_arrays(root: str | os.PathLike | None = None, download: bool = False,
                announce: Announce = print) -> RawData:
    """CIFAR-10's full training and test arrays (memory-mapped from the cache).

    Decodes the source on first use (or when it changed, or the cache is corrupt). Raises
    UserError when no copy is found (after downloading one when `download`).
    """
    folder = resolve_root(root)
    source = find_source(folder)
    if source is None:
        if not download:
            raise not_found(folder)
        fetch(folder, announce)
        source = find_source(folder)
        if source is None:
            raise not_found(folder)
    cache = cache_for(folder)
    entry = cache.load_or_build(source_key(source), lambda why: _decode(source, why, announce))
    info = {"cache": str(cache.folder), "format": source.kind}
    if entry.cache_error is not None:  # a full disk, a read-only cache folder
        announce(f"dataset: could not write the cache in {cache.folder} ({entry.cache_error}); "
                 "using the decoded arrays uncached: every run decodes them again")
        info.update({"cache": "not written", CACHE_ERROR: entry.cache_error})
    elif entry.built:
        announce(f"dataset: decoded {len(entry.arrays['y_train'])} + "
                 f"{len(entry.arrays['y_test'])} images in {entry.meta['decode_s']:.1f} s; "
                 f"cached in {cache.folder}")
    arrays, meta = entry.arrays, entry.meta
    return RawData(arrays["X_train"], arrays["y_train"], arrays["X_test"], arrays["y_test"],
                   class_names=list(meta["class_names"]), source=source.describe(),
                   test_is_sorted=bool(meta["test_is_sorted"]), info=info)


def _decode(source: Source, why: str, announce: Announce) -> Loaded:
    """The arrays of `source` and the metadata the cache keeps with them."""
    announce(f"dataset: decoding CIFAR-10 from {source.describe()} into a cache{why}; "
             "this happens once")
    start = time.perf_counter()
    decoded = decode(source)
    arrays = {"X_train": decoded.X_train, "y_train": decoded.y_train,
              "X_test": decoded.X_test, "y_test": decoded.y_test}
    return arrays, {"class_names": decoded.class_names, "test_is_sorted": decoded.test_is_sorted,
                    "source": str(source.path), "format": source.kind,
                    "decode_s": round(time.perf_counter() - start, 2)}


def fetch(root: str | os.PathLike | None = None, announce: Announce = print) -> Path:
    """Download the official archive into the root and extract it (md5-checked, torchvision).

    Nothing that fetch did not create is overwritten or deleted (see cvlab.data.fetching):
    the archive is downloaded and extracted in a staging folder of the root, checked, and
    only then moved into place. A `cifar-10-python.tar.gz` already there that is not the
    official file, and an incomplete `cifar-10-batches-py/` (a batch file missing), are set
    aside as `<name>.old`, said in one line each. Does nothing when a complete copy is
    already there. Raises UserError when offline or the download fails its checksum; the
    root is then as it was.
    """
    folder = resolve_root(root)
    existing = find_source(folder)
    if existing is not None:
        missing = missing_batches(existing.path) if existing.kind == "batches" else []
        if missing:
            announce(f"dataset: {existing.path} lacks {', '.join(missing)}; fetching the "
                     "official archive")
        elif not (existing.kind == "archive" and existing.path.name == ARCHIVE_NAME):
            announce(f"dataset: CIFAR-10 already present: {existing.describe()}; nothing to "
                     "fetch")
            return existing.path
    with staging_folder(folder, "CIFAR-10") as staging:
        return _fetch_into(folder, staging, announce)


def _fetch_into(folder: Path, staging: Path, announce: Announce) -> Path:
    """Get a verified official archive (the one in `folder`, else a download into
    `staging`), extract it inside `staging`, then move the results into `folder`."""
    from torchvision.datasets.utils import calculate_md5, extract_archive

    archive = folder / ARCHIVE_NAME
    present_md5 = calculate_md5(str(archive)) if archive.is_file() else None
    if present_md5 == MD5:
        announce(f"dataset: {archive} passes its md5 check; extracting it")
        official = archive
    else:
        official = staging / ARCHIVE_NAME
        _download(official, folder, present_md5, announce)
    try:
        extract_archive(str(official), str(staging))
    except Exception as err:  # noqa: BLE001  tarfile, zlib, OSError
        raise formats.corrupt(official, err, "archive") from None
    extracted = staging / BATCH_FOLDER
    if not _has_batches(extracted):
        raise UserError(f"{official} passes its md5 check but holds no {BATCH_FOLDER}/ "
                        f"with {formats.TRAIN_BATCHES[0]}; is {MD5} the right checksum?")
    if official != archive:
        move_into_place(official, archive, announce,
                        f"is not the official archive (md5 {present_md5}, expected {MD5})")
    batches = folder / BATCH_FOLDER
    missing = missing_batches(batches)
    move_into_place(extracted, batches, announce,
                    f"is incomplete (no {', '.join(missing) or 'usable batches'})")
    announce(f"dataset: CIFAR-10 extracted into {batches}")
    return batches


def _download(target: Path, folder: Path, present_md5: str | None, announce: Announce) -> None:
    """Download the archive to `target` (a temporary name) with torchvision; md5-checked."""
    from torchvision.datasets.utils import download_url

    url = os.environ.get(URL_ENV) or URL
    announce(f"dataset: downloading {url} into {folder} (md5 {MD5})")
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        download_url(url, str(target.parent), filename=target.name, md5=MD5)
    except Exception as err:  # noqa: BLE001  network, HTTP or checksum errors
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if present_md5 is not None:
            advice = (f"{folder / ARCHIVE_NAME} was left untouched (its md5 {present_md5} is "
                      f"not the official {MD5}); check the network (are you offline?) or set "
                      f"${URL_ENV} to a mirror")
        else:
            advice = (f"check the network (are you offline?) or put {ARCHIVE_NAME}, "
                      f"{BATCH_FOLDER}/ or a train/ + test/ image tree into {folder} by hand")
        raise UserError(f"could not download CIFAR-10 from {url} ({reason}); {advice}") from None
    finally:
        socket.setdefaulttimeout(previous_timeout)


def info(root: str | os.PathLike | None = None) -> list[dict[str, str]]:
    """Rows for `cvlab data info`: where it looked, what it found, the cache state."""
    folder = resolve_root(root)
    sources = find_sources(folder)
    if not sources:
        return [{"dataset": "cifar10", "looked in": looked_for(folder), "found": "nothing",
                 "cache": "-"}]
    cache = cache_for(folder)
    rows = []
    for index, source in enumerate(sources):
        found = f"{source.describe()}: {_count(source)}"
        if index == 0:
            state, problem = cache.check(source_key(source))
            meta = cache.read_meta() or {}
            detail = {"valid": f"valid, checksums verified ({cache.folder}, decoded in "
                               f"{meta.get('decode_s')} s)",
                      "missing": f"not built yet ({cache.folder}); built on first use",
                      "stale": f"stale ({cache.folder}): the source changed; rebuilt on next use",
                      "corrupt": f"corrupt ({cache.folder}: {problem}); rebuilt on next "
                                 "use"}[state]
            if state == "valid":
                found += f" -> cached {_cached_counts(meta)}"
        else:
            detail = "- (not used: an earlier source is preferred)"
        rows.append({"dataset": "cifar10", "looked in": str(folder), "found": found,
                     "cache": detail})
    return rows


def _count(source: Source) -> str:
    if source.kind == "batches":
        names = [*formats.TRAIN_BATCHES, formats.TEST_BATCH]
        present = sum((source.path / n).is_file() for n in names)
        return f"{present} of 6 batch files"
    if source.kind == "tree":
        counts = {}
        for split in ("train", "test"):
            classes = [p for p in (source.path / split).iterdir() if p.is_dir()]
            counts[split] = (sum(sum(1 for e in os.scandir(c) if formats.is_image_name(e.name))
                                 for c in classes), len(classes))
        return (f"{counts['train'][0]} train / {counts['test'][0]} test images in "
                f"{counts['train'][1]} classes")
    return f"{source.path.stat().st_size / 1e6:.1f} MB"


def _cached_counts(meta: dict[str, Any]) -> str:
    arrays = meta.get("arrays", {})
    train = arrays.get("y_train", {}).get("shape", ["?"])[0]
    test = arrays.get("y_test", {}).get("shape", ["?"])[0]
    return f"{train} train / {test} test, classes {', '.join(meta.get('class_names', []))}"
