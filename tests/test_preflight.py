"""Every check a config allows is made before the run folder is created and before any data or
model is loaded: one line on stderr, exit 2, nothing written.

Image files of the conv demo, a GPU that is not there, a split a family has not, a batch
larger than the training set, a number too long to read.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import yaml
from conftest import TINY_DATA
from PIL import Image

from cvlab.config.compose import compose_plan
from cvlab.config.typed import train_config

LONG_NUMBER = "7" * 5000  # more digits than Python converts to an integer (4300)


def refused(result, *fragments: str) -> str:
    """The one line of a refusal (exit 2, no traceback) that holds every fragment."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def written(root: Path) -> list[Path]:
    """Everything under `root` but the inputs a test put there (root/inputs)."""
    return [path for path in root.rglob("*") if path.relative_to(root).parts[0] != "inputs"]


@pytest.fixture
def images(tmp_path) -> dict[str, Path]:
    """An image, a file that is not one, a truncated image, under tmp_path/inputs."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    good = folder / "good.png"
    Image.new("RGB", (24, 24), (200, 30, 30)).save(good)
    (folder / "notes.png").write_text("not an image\n")
    data = good.read_bytes()
    (folder / "cut.png").write_bytes(data[:len(data) // 2])
    return {path.stem: path for path in folder.iterdir()}


@pytest.mark.parametrize("name, fragment", [
    ("missing", "is not a file"), ("notes", "is not an image"),
    ("cut", "cannot read"), ("inputs", "is not a file"),
])
def test_conv_demo_images_are_checked_before_the_run_folder(cvlab, tmp_path, images, name,
                                                            fragment):
    path = images.get(name, tmp_path / name)
    result = cvlab("train", "experiment=conv_demo", f"model.images=[{images['good']},{path}]")
    refused(result, "model.images", str(path), fragment)
    assert written(tmp_path) == []


def test_an_unreadable_image_is_one_line_and_no_folder(cvlab, tmp_path, images):
    if os.geteuid() == 0:
        pytest.skip("root reads a file whatever its permissions")
    images["good"].chmod(0)
    result = cvlab("train", "experiment=conv_demo", f"model.images=[{images['good']}]")
    refused(result, "model.images", "cannot read", "Permission denied")
    assert written(tmp_path) == []


def test_more_demo_images_than_the_figure_holds_are_refused(cvlab, tmp_path, images):
    many = ",".join([str(images["good"])] * 9)
    refused(cvlab("train", "experiment=conv_demo", f"model.images=[{many}]"), "model.images")
    assert written(tmp_path) == []


@pytest.mark.parametrize("model", [["model=torch_cnn", *TINY_DATA],
                                   ["model=caption_rnn", "dataset=shapes_captions"]],
                         ids=["torch", "captioning"])
def test_device_cuda_without_a_gpu_is_refused_before_the_run_folder(cvlab, tmp_path, model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    refused(cvlab("train", *model, "device=cuda"), "device=cuda")
    assert written(tmp_path) == []


def test_eval_of_a_split_a_captioning_run_has_not_loads_nothing(cvlab, tmp_path):
    # a captioning run's folder without weights and with data that is not there: the split
    # is refused first, before the weights or the data are looked for
    run = tmp_path / "run"
    run.mkdir()
    config = train_config({"model": {"type": "captioning"}, "dataset": {
        "name": "shapes_captions", "root": str(tmp_path / "no-data")}})
    (run / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(config)))
    (run / "summary.json").write_text(json.dumps({
        "status": "completed", "command": "train", "family": "captioning",
        "model_type": "captioning", "dataset": "shapes_captions"}))
    before = sorted(tmp_path.rglob("*"))
    refused(cvlab("eval", f"run={run}", "split=test"), "split=test", "no test split")
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("model", ["model=bn_fc", "model=torch_cnn"])
def test_a_batch_larger_than_the_training_set_is_refused(cvlab, tmp_path, model):
    result = cvlab("train", model, *TINY_DATA, "batch_size=101")
    refused(result, "batch_size=101", "dataset.num_train=100")
    assert written(tmp_path) == []
    (_, fits), = compose_plan("train", [model, *TINY_DATA, "batch_size=100"], False).jobs
    assert fits.batch_size == fits.dataset.num_train == 100


@pytest.mark.parametrize("overrides, key", [
    ([f"seed={LONG_NUMBER}"], "seed"),
    ([f"epochs={LONG_NUMBER}"], "epochs"),
    ([f"seed='{LONG_NUMBER}'"], "seed"),
    (["-m", f"epochs=1,{LONG_NUMBER}"], "epochs"),
], ids=["seed", "epochs", "quoted", "sweep"])
def test_a_number_too_long_to_read_names_its_key(cvlab, tmp_path, overrides, key):
    line = refused(cvlab("train", *overrides), f"cvlab train: {key}")
    assert len(line) < 200 and "set_int_max_str_digits" not in line
    assert written(tmp_path) == []
