"""shapes_captions: deterministic, COCO layout, caption limits, unseen val combinations."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cvlab.data import shapes_captions as S
from cvlab.data.coco import decode_captions, load_coco_data


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return S.ensure(num_train=24, num_val=8, seed=3, root=root), root


def test_loader_reads_it_through_the_coco_path(built):
    folder, _ = built
    data = load_coco_data(folder)
    assert data["train_features"].shape == (24, 512)
    assert data["train_features"].dtype == np.float32
    assert data["val_features"].shape == (8, 512)
    assert data["train_captions"].shape[1] == 17 and data["train_captions"].dtype == np.int32
    assert set(np.unique(data["train_image_idxs"])) == set(range(24))
    raw = load_coco_data(folder, pca_features=False)
    assert raw["train_features"].shape == (24, 1536)
    first = folder / data["train_urls"][0]
    assert first.is_file() and first.suffix == ".png"  # images saved for galleries
    assert decode_captions(data["train_captions"][0], data["idx_to_word"]).startswith("<START> ")


def test_vocabulary_and_caption_limits(built):
    folder, _ = built
    data = load_coco_data(folder)
    words = data["idx_to_word"]
    assert words[:4] == ["<NULL>", "<START>", "<END>", "<UNK>"]
    assert len(words) == len(set(words)) < 40
    for split in ("train", "val"):
        caps = data[f"{split}_captions"]
        assert (caps[:, 0] == 1).all()
        assert ((caps == 2).sum(axis=1) == 1).all()  # exactly one <END>
        length = (caps != 0).sum(axis=1)
        assert length.max() <= 17
        ends = (caps == 2).argmax(axis=1)
        assert ((caps[np.arange(len(caps)), :][:, :] != 0).sum(axis=1) == ends + 1).all()
    for layout in S.LAYOUTS:
        scene = S.Scene(layout, tuple(("large", "purple", "triangle") for _ in
                                      range({"single": 1, "row": 3}.get(layout, 2))))
        assert all(len(c.split()) <= S.MAX_WORDS for c in S.captions_of(scene))


def test_generation_is_deterministic(built, tmp_path):
    folder, _ = built
    again = S.build(tmp_path / "again", num_train=24, num_val=8, seed=3)
    for name in ("coco2014_captions.h5", "train2014_vgg16_fc7_pca.h5", "val2014_vgg16_fc7.h5"):
        with h5py.File(folder / name) as a, h5py.File(again / name) as b:
            for key in a:
                np.testing.assert_array_equal(a[key][()], b[key][()])
    assert (folder / "coco2014_vocab.json").read_text() == (again /
                                                            "coco2014_vocab.json").read_text()
    assert (folder / "images/val/000003.png").read_bytes() == (
        again / "images/val/000003.png").read_bytes()
    other = S.build(tmp_path / "other", num_train=6, num_val=2, seed=4)
    with h5py.File(folder / "coco2014_captions.h5") as a, h5py.File(
            other / "coco2014_captions.h5") as b:
        assert not np.array_equal(a["val_captions"][:4], b["val_captions"][:4])  # seed matters


def test_ensure_reuses_the_cache(built):
    folder, root = built
    stamp = (folder / S.DONE_MARKER).stat().st_mtime_ns
    assert S.ensure(num_train=24, num_val=8, seed=3, root=root) == folder
    assert (folder / S.DONE_MARKER).stat().st_mtime_ns == stamp
    assert folder.name in S.info(root)[0]["cache"]


def test_val_scenes_are_new_combinations():
    rng = np.random.default_rng(0)
    scenes = [S.random_scene(rng) for _ in range(3000)]
    train = {s.key for s in scenes if not s.is_val}
    val = {s.key for s in scenes if s.is_val}
    assert val and train and not (train & val)
    assert all(s.layout != "single" for s in scenes if s.is_val)
    share = sum(s.is_val for s in scenes if s.layout != "single") / sum(
        s.layout != "single" for s in scenes)
    assert 0.1 < share < 0.3
    # every object of a val scene also occurs in training scenes (composition, not new words)
    train_objects = {o for s in scenes if not s.is_val for o in s.objects}
    assert all(o in train_objects for s in scenes if s.is_val for o in s.objects)


def test_ensure_keeps_a_foreign_folder_and_leaves_no_staging_on_failure(tmp_path, monkeypatch):
    root = tmp_path / "root"
    folder = root / f"v{S.VERSION}-train6-val2-seed4"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")  # the set's folder name, but not built by cvlab
    assert S.ensure(num_train=6, num_val=2, seed=4, root=root) == folder
    assert (folder / S.DONE_MARKER).is_file()
    assert (root / f"{folder.name}.old" / "notes.txt").read_text() == "mine"

    def broken_build(staging, *args, **kwargs):
        staging.mkdir(parents=True)
        (staging / "coco2014_captions.h5").write_bytes(b"half written")
        raise OSError("disk full")

    monkeypatch.setattr(S, "build", broken_build)
    with pytest.raises(OSError, match="disk full"):
        S.ensure(num_train=7, num_val=2, seed=4, root=root)
    assert sorted(p.name for p in root.iterdir()) == [folder.name, f"{folder.name}.old"]
