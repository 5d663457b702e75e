"""COCO captioning in the course's on-disk layout (`coco_captioning/`), and its download.

The folder holds (the layout of the course's captioning notebooks):
    coco2014_captions.h5          train_captions (M, 17) int32, train_image_idxs (M,),
                                  val_captions, val_image_idxs
    train2014_vgg16_fc7.h5        features (82783, 4096)   (key `features`)
    val2014_vgg16_fc7.h5          features (40504, 4096)
    train2014_vgg16_fc7_pca.h5    features (82783, 512) float32
    val2014_vgg16_fc7_pca.h5      features (40504, 512) float32
    coco2014_vocab.json           idx_to_word (list), word_to_idx (dict)
    train2014_urls.txt            one image URL per line (row i = image i)
    val2014_urls.txt
Captions are 17 word ids: <START> words <END> then <NULL> (= 0) padding. The embedded
shapes_captions set is written in the same layout, so this loader reads both.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.data.constants import END, NULL, START
from cvlab.data.fetching import move_into_place, staging_folder
from cvlab.errors import UserError
from cvlab.paths import dataset_root

log = logging.getLogger(__name__)

CAPTIONS_FILE = "coco2014_captions.h5"
VOCAB_FILE = "coco2014_vocab.json"
SPLITS = ("train", "val")
FOLDER = "coco_captioning"
COCO_URL = "http://cs231n.stanford.edu/coco_captioning.zip"
# The archive's size is checked against the server's Content-Length while downloading and
# every member's CRC-32 is verified when unpacking; set COCO_MD5 to pin one exact archive.
COCO_MD5: str | None = None


def feature_file(split: str, pca_features: bool) -> str:
    """File name of a split's image features (the PCA'd 512-d ones or the raw fc7)."""
    return f"{split}2014_vgg16_fc7{'_pca' if pca_features else ''}.h5"


def url_file(split: str) -> str:
    return f"{split}2014_urls.txt"


def find_coco(root: str | Path | None = None) -> Path | None:
    """The folder holding coco2014_captions.h5: `root` or `root/coco_captioning`
    (root defaults to $CVLAB_DATA/coco, else ~/.cache/cvlab/coco); None when absent."""
    base = dataset_root("coco", root)
    for candidate in (base, base / FOLDER):
        if (candidate / CAPTIONS_FILE).is_file():
            return candidate
    return None


def _read_h5(path: Path, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    import h5py

    if not path.is_file():
        raise UserError(f"missing file {path}; a captioning folder needs {CAPTIONS_FILE}, "
                        f"{VOCAB_FILE}, the *_vgg16_fc7*.h5 features and *_urls.txt "
                        "(cvlab data fetch dataset=coco downloads them)")
    try:
        with h5py.File(path, "r") as f:
            names = list(f.keys()) if keys is None else list(keys)
            missing = [k for k in names if k not in f]
            if missing:
                raise UserError(f"{path} lacks the key(s) {', '.join(missing)}; it holds "
                                f"{', '.join(sorted(f.keys())) or 'nothing'}")
            return {k: np.asarray(f[k]) for k in names}
    except OSError as err:
        raise UserError(f"cannot read {path} as HDF5: {err}") from None


def load_coco_data(
    base_dir: str | Path,
    max_train: int | None = None,
    pca_features: bool = True,
    rng: np.random.RandomState | None = None,
) -> dict[str, Any]:
    """The course's data dict: train/val captions, image_idxs, features, urls and the vocab.

    Keys: train_captions (M, 17) int32, train_image_idxs (M,), train_features (I, D),
    train_urls (I,) str, the same for val, idx_to_word (list), word_to_idx (dict).
    `max_train` keeps that many training captions drawn with replacement
    (`rng.randint(num_train, size=max_train)`, numpy's global RNG by default, as in the
    course). Missing files or keys and inconsistent lengths raise UserError.
    """
    base = Path(base_dir).expanduser()
    if not base.is_dir():
        raise UserError(f"captioning data folder {base} does not exist; run "
                        "`cvlab data fetch dataset=coco` or set dataset.root=<folder holding "
                        f"{CAPTIONS_FILE}>")
    data: dict[str, Any] = {}
    caption_keys = tuple(f"{s}_{k}" for s in SPLITS for k in ("captions", "image_idxs"))
    data.update(_read_h5(base / CAPTIONS_FILE, caption_keys))
    for split in SPLITS:
        data[f"{split}_features"] = _read_h5(
            base / feature_file(split, pca_features), ("features",))["features"]

    vocab_path = base / VOCAB_FILE
    if not vocab_path.is_file():
        raise UserError(f"missing file {vocab_path}; it must hold idx_to_word and word_to_idx")
    try:
        vocab = json.loads(vocab_path.read_text())
    except ValueError as err:
        raise UserError(f"{vocab_path} is not valid JSON: {err}") from None
    for key in ("idx_to_word", "word_to_idx"):
        if key not in vocab:
            raise UserError(f"{vocab_path} lacks the key {key}")
    data.update(vocab)

    for split in SPLITS:
        path = base / url_file(split)
        if not path.is_file():
            raise UserError(f"missing file {path} (one image URL per line)")
        data[f"{split}_urls"] = np.asarray([line.strip() for line in path.read_text().splitlines()])

    _check_consistent(data, base)
    if max_train is not None:
        num_train = data["train_captions"].shape[0]
        draw = np.random if rng is None else rng
        mask = draw.randint(num_train, size=max_train)
        data["train_captions"] = data["train_captions"][mask]
        data["train_image_idxs"] = data["train_image_idxs"][mask]
    return data


def _check_consistent(data: dict[str, Any], base: Path) -> None:
    vocab_size = len(data["idx_to_word"])
    if len(data["word_to_idx"]) != vocab_size:
        raise UserError(f"{base / VOCAB_FILE}: idx_to_word has {vocab_size} words but "
                        f"word_to_idx {len(data['word_to_idx'])}")
    for token in (NULL, START, END):
        if token not in data["word_to_idx"]:
            raise UserError(f"{base / VOCAB_FILE}: the vocabulary lacks the token {token}")
    for split in SPLITS:
        captions, idxs = data[f"{split}_captions"], data[f"{split}_image_idxs"]
        features, urls = data[f"{split}_features"], data[f"{split}_urls"]
        if captions.ndim != 2 or captions.shape[0] != idxs.shape[0]:
            raise UserError(f"{base}: {split}_captions {captions.shape} and {split}_image_idxs "
                            f"{idxs.shape} disagree in length")
        if features.shape[0] != urls.shape[0]:
            raise UserError(f"{base}: {split} features have {features.shape[0]} rows but "
                            f"{url_file(split)} has {urls.shape[0]} URLs; they must match")
        if idxs.size and (idxs.min() < 0 or idxs.max() >= features.shape[0]):
            raise UserError(f"{base}: {split}_image_idxs point outside the {features.shape[0]} "
                            f"feature rows (max index {int(idxs.max())})")
        if captions.size and (captions.min() < 0 or captions.max() >= vocab_size):
            raise UserError(f"{base}: {split}_captions hold word ids outside the vocabulary "
                            f"of {vocab_size} words")


def sample_coco_minibatch(
    data: dict[str, Any],
    batch_size: int = 100,
    split: str = "train",
    rng: np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random minibatch (with replacement) of captions: (captions (B, T), features (B, D),
    urls (B,)). Draws `choice(num_captions, batch_size)` from rng (numpy's global default)."""
    split_size = data[f"{split}_captions"].shape[0]
    draw = np.random if rng is None else rng
    mask = draw.choice(split_size, batch_size)
    captions = data[f"{split}_captions"][mask]
    image_idxs = data[f"{split}_image_idxs"][mask]
    features = data[f"{split}_features"][image_idxs]
    urls = data[f"{split}_urls"][image_idxs]
    return captions, features, urls


def decode_captions(captions: np.ndarray, idx_to_word: list[str] | dict[int, str]
                    ) -> list[str] | str:
    """Word ids -> strings: <NULL> dropped, decoding stops after <END> (which is kept, as is
    <START>). captions (N, T) -> N strings; a single (T,) caption -> one string."""
    captions = np.asarray(captions)
    singleton = captions.ndim == 1
    if singleton:
        captions = captions[None]
    decoded = []
    for row in captions:
        words = []
        for idx in row:
            word = idx_to_word[int(idx)]
            if word != NULL:
                words.append(word)
            if word == END:
                break
        decoded.append(" ".join(words))
    return decoded[0] if singleton else decoded


def info(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Rows for `cvlab data info`: where COCO captioning is looked for and what is there."""
    where = dataset_root("coco", root)
    base = find_coco(root)
    looked = f"{where} (or {where / FOLDER})"
    if base is None:
        return [{"dataset": "coco", "looked in": looked, "found": "nothing",
                 "fetch": f"cvlab data fetch dataset=coco downloads {COCO_URL}"}]
    return [{"dataset": "coco", "looked in": looked, "found": f"{base}: {_describe(base)}"}]


def _describe(base: Path) -> str:
    import h5py

    try:
        with h5py.File(base / CAPTIONS_FILE, "r") as f:
            sizes = {s: f[f"{s}_captions"].shape[0] for s in SPLITS if f"{s}_captions" in f}
        vocab = json.loads((base / VOCAB_FILE).read_text())
        return (f"{sizes.get('train', 0)} train / {sizes.get('val', 0)} val captions, "
                f"{len(vocab.get('idx_to_word', []))} words")
    except (OSError, ValueError, KeyError) as err:
        return f"unreadable: {err}"


def fetch_coco(root: str | Path | None = None, url: str = COCO_URL,
               md5: str | None = COCO_MD5,
               announce: Callable[[str], None] = log.info) -> Path:
    """Download the course archive into `root` (default $CVLAB_DATA/coco) and unpack it.

    Uses torchvision's download utility; the downloaded size must equal the server's
    Content-Length, every zip member's CRC-32 is checked, and the unpacked folder must load,
    all inside a staging folder of the root (see cvlab.data.fetching) before anything is
    moved into place: nothing already in the root is overwritten or deleted (an entry of the
    same name is set aside as `<name>.old`, said in one line). Returns the folder holding
    coco2014_captions.h5. Already present: nothing is downloaded.
    """
    found = find_coco(root)
    if found is not None:
        announce(f"dataset: COCO captioning already present at {found}; nothing to fetch")
        return found
    target = dataset_root("coco", root)
    with staging_folder(target, "COCO captioning") as staging:
        archive = staging / Path(url).name
        _download(url, archive, md5, target)
        unpacked = staging / "unpacked"
        _unpack(archive, unpacked, url)
        if find_coco(unpacked) is None:
            raise UserError(f"{url} holds no {CAPTIONS_FILE} (at its top or in {FOLDER}/); "
                            "is it the course's coco_captioning.zip?")
        load_coco_data(find_coco(unpacked), max_train=1)  # every file present and consistent
        for entry in sorted(unpacked.iterdir()):
            move_into_place(entry, target / entry.name, announce)
    found = find_coco(target)
    if found is None:  # only if the root changed under us while moving
        raise UserError(f"COCO captioning unpacked into {target} but {CAPTIONS_FILE} is "
                        "not there any more")
    return found


def _download(url: str, archive: Path, md5: str | None, target: Path) -> None:
    """Download `url` to `archive` (inside the staging folder); size and md5 checked."""
    import urllib.error
    import urllib.request

    from torchvision.datasets.utils import check_integrity, download_url

    expected = None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30) as r:
            length = r.headers.get("Content-Length")
            expected = int(length) if length else None
    except (urllib.error.URLError, OSError, ValueError):
        expected = None  # download_url reports the failure below
    try:
        download_url(url, str(archive.parent), filename=archive.name, md5=md5)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        raise UserError(f"cannot download {url}: {err}; check the network, or download it "
                        f"yourself and unpack it into {target}") from None
    size = archive.stat().st_size
    if expected is not None and size != expected:
        raise UserError(f"download of {url} is incomplete ({size} of {expected} bytes); "
                        "run the fetch again")
    if md5 is not None and not check_integrity(str(archive), md5):
        raise UserError(f"{url} does not match the expected MD5 {md5}")


def _unpack(archive: Path, destination: Path, url: str) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise UserError(f"the download of {url} is corrupt (member {bad} fails its "
                                "CRC check); run the fetch again")
            zf.extractall(destination)
    except zipfile.BadZipFile as err:
        raise UserError(f"{url} is not a valid zip archive ({err}); is it the course's "
                        "coco_captioning.zip?") from None
