"""`cvlab reproduce impl=<folder>` and `model=impl_*`: the notebooks' items measured on a
student's own code (through worker processes; cvlab's where their folder has none, and every
item says whose), and their FullyConnectedNet trained by cvlab's run core."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from conftest import TINY_DATA
from impl_fixtures import course_folder

ADAM_OFF = """
    from cvlab.train.optim import adam as _correct_adam

    def adam(w, dw, config=None):
        next_w, config = _correct_adam(w, dw, config)
        return next_w * (1 + 1e-4), config
"""
ANNOUNCED_NET = """
    from cvlab.models.fc_net import FullyConnectedNet as _CorrectNet

    class FullyConnectedNet(_CorrectNet):
        def __init__(self, hidden_dims, **kwargs):
            print("the student's FullyConnectedNet", hidden_dims, kwargs["normalization"])
            super().__init__(hidden_dims, **kwargs)
"""


def reproduction_of(root: Path) -> dict:
    (path,) = (root / "outputs" / "reproduce").glob("*/*/reproduction.json")
    return json.loads(path.read_text())


def no_student_module_here() -> bool:
    return not [name for name in sys.modules if name == "cs231n" or name.startswith("cs231n.")]


def test_the_layers_part_on_a_correct_folder_holds_every_item_as_yours(cvlab, tmp_path):
    root = course_folder(tmp_path / "mine")
    result = cvlab("reproduce", "part=layers", "profile=quick", f"impl={root}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    reproduction = reproduction_of(tmp_path)
    assert reproduction["implementation"]["folder"] == str(root)
    items = reproduction["items"]
    assert items and {(item["verdict"], item["implementation"]) for item in items} == {
        ("held", "yours")}
    folder = next((tmp_path / "outputs" / "reproduce").glob("*/*"))
    assert "[yours]" in (folder / "report.html").read_text()
    assert no_student_module_here()


def test_a_broken_update_rule_fails_its_items_and_missing_classes_are_cvlabs(cvlab, tmp_path):
    root = course_folder(tmp_path / "mine", {"optim.py": ADAM_OFF},
                         without=("classifiers/fc_net.py",))
    result = cvlab("reproduce", "part=layers", "profile=quick", f"impl={root}")
    assert result.returncode == 1
    verdicts = {item["id"]: (item["verdict"], item["implementation"])
                for item in reproduction_of(tmp_path)["items"]}
    assert {key: value for key, value in verdicts.items() if "adam" in key} == {
        "layers.update.adam.next_w": ("not_held", "yours"),  # its state v and m are right
        "layers.update.adam.v": ("held", "yours"), "layers.update.adam.m": ("held", "yours")}
    assert verdicts["layers.update.rmsprop.next_w"] == ("held", "yours")
    assert verdicts["layers.fc_net.initial_loss.reg0"] == ("held", "cvlab's")
    assert "not held: layers.update.adam.next_w [yours]: |value - course| = 5.98017e-05" \
        in result.stdout
    assert no_student_module_here()


def test_launcher_basic_is_refused_with_impl(cvlab, tmp_path):
    root = course_folder(tmp_path / "mine")
    result = cvlab("reproduce", "part=dropout", "profile=quick", f"impl={root}",
                   "launcher=basic")
    assert result.returncode == 2
    assert "launcher=basic runs the jobs in this process" in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_the_students_network_trains_through_the_run_core(cvlab_script, tmp_path):
    # the installed command (a process of its own: a single run imports the student's class
    # in the process that trains it, as their notebook would)
    root = course_folder(tmp_path / "mine", {"classifiers/fc_net.py": ANNOUNCED_NET})
    result = cvlab_script("train", "model=impl_bn_fc", f"model.impl={root}", *TINY_DATA,
                          "epochs=2", "batch_size=25", "progress=false",
                          "model.hidden_dims=[20,20]", f"outputs_root={tmp_path / 'outputs'}",
                          env={"CVLAB_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "the student's FullyConnectedNet [20, 20] batchnorm" in result.stdout
    (run_dir,) = (tmp_path / "outputs" / "train").glob("*/*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["model_type"]) == ("completed", "impl_fc_net")
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["impl"] == str(root)
    assert summary["metrics"]["iterations"] == 8


def test_an_impl_model_without_its_folder_is_refused_before_any_work(cvlab, tmp_path):
    result = cvlab("train", "model=impl_fc", *TINY_DATA)
    assert result.returncode == 2
    assert "set model.impl=<the folder that holds your cs231n/ package>" in result.stderr
    assert not (tmp_path / "outputs").exists()
