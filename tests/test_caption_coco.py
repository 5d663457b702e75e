"""COCO captioning loader on a tiny fixture in the course's exact layout, and its errors."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from cvlab.data.coco import (
    decode_captions,
    fetch_coco,
    find_coco,
    info,
    load_coco_data,
    sample_coco_minibatch,
)
from cvlab.errors import UserError

WORDS = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "cat", "dog", "on", "mat"]


def write_coco(folder: Path, n_train_images: int = 6, n_val_images: int = 4,
               per_image: int = 2, dim: int = 512) -> Path:
    """A tiny coco_captioning/ folder: same file names, h5 keys, dtypes and vocab format."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    with h5py.File(folder / "coco2014_captions.h5", "w") as f:
        for split, count in (("train", n_train_images), ("val", n_val_images)):
            idxs = np.repeat(np.arange(count), per_image).astype(np.int32)
            caps = np.zeros((len(idxs), 17), dtype=np.int32)
            caps[:, 0] = 1
            caps[:, 1:4] = rng.randint(4, len(WORDS), size=(len(idxs), 3))
            caps[:, 4] = 2
            f.create_dataset(f"{split}_captions", data=caps)
            f.create_dataset(f"{split}_image_idxs", data=idxs)
    for split, count in (("train", n_train_images), ("val", n_val_images)):
        for suffix, d in (("_pca", dim), ("", 4096)):
            with h5py.File(folder / f"{split}2014_vgg16_fc7{suffix}.h5", "w") as f:
                f.create_dataset("features", data=rng.randn(count, d).astype(np.float32))
        (folder / f"{split}2014_urls.txt").write_text(
            "".join(f"http://images.cocodataset.org/{split}2014/{i:012d}.jpg\n"
                    for i in range(count)))
    (folder / "coco2014_vocab.json").write_text(json.dumps(
        {"idx_to_word": WORDS, "word_to_idx": {w: i for i, w in enumerate(WORDS)}}))
    return folder


def test_loads_the_course_layout(tmp_path):
    base = write_coco(tmp_path / "coco_captioning")
    data = load_coco_data(base)
    assert data["train_captions"].shape == (12, 17) and data["train_captions"].dtype == np.int32
    assert data["val_image_idxs"].shape == (8,)
    assert data["train_features"].shape == (6, 512) and data["val_features"].dtype == np.float32
    assert data["train_urls"].shape == (6,) and data["val_urls"][1].endswith("000000000001.jpg")
    assert data["idx_to_word"] == WORDS and data["word_to_idx"]["cat"] == 5
    raw = load_coco_data(base, pca_features=False)
    assert raw["train_features"].shape == (6, 4096)
    assert find_coco(tmp_path) == base  # root or root/coco_captioning
    assert str(base) in info(tmp_path)[0]["found"]
    assert info(tmp_path / "empty")[0]["found"] == "nothing"


def test_max_train_subsamples_with_the_course_rng(tmp_path):
    base = write_coco(tmp_path)
    full = load_coco_data(base)
    np.random.seed(231)
    small = load_coco_data(base, max_train=5)
    np.random.seed(231)
    mask = np.random.randint(12, size=5)
    np.testing.assert_array_equal(small["train_captions"], full["train_captions"][mask])
    np.testing.assert_array_equal(small["train_image_idxs"], full["train_image_idxs"][mask])
    assert small["train_features"].shape == full["train_features"].shape  # images kept
    seeded = load_coco_data(base, max_train=5, rng=np.random.RandomState(0))
    again = load_coco_data(base, max_train=5, rng=np.random.RandomState(0))
    np.testing.assert_array_equal(seeded["train_captions"], again["train_captions"])


def test_minibatch_pairs_captions_with_their_images(tmp_path):
    data = load_coco_data(write_coco(tmp_path))
    captions, features, urls = sample_coco_minibatch(data, batch_size=7, split="val",
                                                     rng=np.random.RandomState(1))
    assert captions.shape == (7, 17) and features.shape == (7, 512) and urls.shape == (7,)
    mask = np.random.RandomState(1).choice(8, 7)
    idxs = data["val_image_idxs"][mask]
    np.testing.assert_array_equal(features, data["val_features"][idxs])
    np.testing.assert_array_equal(urls, data["val_urls"][idxs])


def test_decode_captions():
    words = WORDS
    caps = np.array([[1, 5, 7, 8, 2, 0, 0], [1, 4, 2, 6, 6, 0, 0]])
    assert decode_captions(caps, words) == ["<START> cat on mat <END>", "<START> a <END>"]
    assert decode_captions(caps[0], words) == "<START> cat on mat <END>"
    assert decode_captions(np.array([[5, 0, 6]]), words) == ["cat dog"]  # no <END>: all words


def test_missing_folder_file_key_and_length_mismatch(tmp_path):
    with pytest.raises(UserError, match="does not exist.*cvlab data fetch"):
        load_coco_data(tmp_path / "nowhere")
    base = write_coco(tmp_path / "a")
    (base / "val2014_urls.txt").unlink()
    with pytest.raises(UserError, match="val2014_urls.txt"):
        load_coco_data(base)

    base = write_coco(tmp_path / "b")
    with h5py.File(base / "coco2014_captions.h5", "a") as f:
        del f["val_image_idxs"]
    with pytest.raises(UserError, match="lacks the key.*val_image_idxs"):
        load_coco_data(base)

    base = write_coco(tmp_path / "c")
    with h5py.File(base / "coco2014_captions.h5", "a") as f:
        del f["train_image_idxs"]
        f.create_dataset("train_image_idxs", data=np.zeros(5, dtype=np.int32))
    with pytest.raises(UserError, match="disagree in length"):
        load_coco_data(base)

    base = write_coco(tmp_path / "d")
    (base / "train2014_urls.txt").write_text("http://x/1.jpg\n")
    with pytest.raises(UserError, match="6 rows but train2014_urls.txt has 1"):
        load_coco_data(base)


def serve_coco(tmp_path: Path, www: Path) -> None:
    source = write_coco(tmp_path / "src" / "coco_captioning")
    with zipfile.ZipFile(www / "coco_captioning.zip", "w") as zf:
        for path in source.iterdir():
            zf.write(path, f"coco_captioning/{path.name}")


def test_fetch_unpacks_a_verified_archive(tmp_path, http_folder):
    www, url = http_folder
    serve_coco(tmp_path, www)
    target = tmp_path / "data"
    found = fetch_coco(target, url=f"{url}/coco_captioning.zip")
    assert found == target / "coco_captioning"
    assert load_coco_data(found)["train_captions"].shape == (12, 17)
    assert [p.name for p in target.iterdir()] == ["coco_captioning"]  # no archive, no staging

    (www / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a valid zip"):
        fetch_coco(tmp_path / "other", url=f"{url}/broken.zip")
    with pytest.raises(UserError, match="cannot download"):
        fetch_coco(tmp_path / "third", url=f"{url}/missing.zip")
    assert not (tmp_path / "other").exists() and not (tmp_path / "third").exists()


def test_fetch_keeps_what_the_user_had_in_the_root(tmp_path, http_folder):
    www, url = http_folder
    serve_coco(tmp_path, www)
    target = tmp_path / "data"
    partial = target / "coco_captioning"
    partial.mkdir(parents=True)
    (partial / "coco2014_vocab.json").write_text('{"my": "own vocabulary"}')
    (target / "coco_captioning.zip").write_bytes(b"my own half-downloaded zip")
    lines: list[str] = []
    found = fetch_coco(target, url=f"{url}/coco_captioning.zip", announce=lines.append)
    assert found == partial and load_coco_data(found)["val_captions"].shape == (8, 17)
    aside = target / "coco_captioning.old"
    assert (aside / "coco2014_vocab.json").read_text() == '{"my": "own vocabulary"}'
    assert (target / "coco_captioning.zip").read_bytes() == b"my own half-downloaded zip"
    assert len([line for line in lines if "set aside as coco_captioning.old" in line]) == 1
    assert sorted(p.name for p in target.iterdir()) == [
        "coco_captioning", "coco_captioning.old", "coco_captioning.zip"]

    (www / "coco_captioning.zip").write_bytes(b"not a zip")
    shutil.rmtree(partial)
    with pytest.raises(UserError, match="not a valid zip"):
        fetch_coco(target, url=f"{url}/coco_captioning.zip")
    assert sorted(p.name for p in target.iterdir()) == [
        "coco_captioning.old", "coco_captioning.zip"]
