"""`cvlab reproduce impl=<folder>` and `model=impl_*`: the notebooks' items measured on a
student's own code (through worker processes; cvlab's where their folder has none, and every
item says whose), and their FullyConnectedNet trained by cvlab's run core."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import TINY_DATA, finish, one_line, start, wait_for
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

# The course's CaptioningRNN takes torch tensors and its sample returns one.
TENSOR_CAPTIONER = """
    import torch
    from cvlab.models.nets.captioning import CaptioningRNN as _CorrectRNN

    class CaptioningRNN(_CorrectRNN):
        def __init__(self, word_to_idx, **kwargs):
            print("the student's CaptioningRNN", kwargs["cell_type"], kwargs["hidden_dim"])
            super().__init__(word_to_idx, **kwargs)

        def loss(self, features, captions):
            assert isinstance(features, torch.Tensor) and features.dtype == self.dtype
            assert isinstance(captions, torch.Tensor) and captions.dtype == torch.long
            return super().loss(features, captions)

        def sample(self, features, max_length=30):
            assert isinstance(features, torch.Tensor)
            return torch.from_numpy(super().sample(features, max_length))
"""
CAPTIONS = ["dataset=shapes_captions", "dataset.shapes_train=40", "dataset.shapes_val=10",
            "model.hidden_dim=16", "model.wordvec_dim=8", "model.max_length=8", "epochs=2",
            "batch_size=20", "train_eval_samples=10", "val_eval_samples=10", "progress=false"]


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


def test_the_students_captioner_trains_on_the_cpu_as_cvlabs_would(cvlab_script, tmp_path):
    # their class is cvlab's under the course's name: the same seed draws the same weights, so
    # the runs' losses are equal; the solver hands it tensors and reads its tensor of ids
    root = course_folder(tmp_path / "mine", {"classifiers/rnn_pytorch.py": TENSOR_CAPTIONER})
    env = {"CVLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    summaries = {}
    for name, model in (("yours", ["model=impl_caption_lstm", f"model.impl={root}"]),
                        ("cvlabs", ["model=caption_lstm"])):
        result = cvlab_script("train", *model, *CAPTIONS, "device=cpu",
                              f"outputs_root={tmp_path / name}", env=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr
        assert ("the student's CaptioningRNN lstm 16" in result.stdout) == (name == "yours")
        (run_dir,) = (tmp_path / name / "train").glob("*/*")
        summaries[name] = json.loads((run_dir / "summary.json").read_text())
        assert json.loads((run_dir / "samples.json").read_text())["splits"]["val"]
    yours, cvlabs = summaries["yours"], summaries["cvlabs"]
    assert (yours["status"], yours["model_type"]) == ("completed", "impl_captioning")
    assert yours["device"].startswith("cpu")
    assert yours["metrics"]["final_loss"] == pytest.approx(cvlabs["metrics"]["final_loss"],
                                                           rel=1e-5)
    assert yours["metrics"]["val_bleu1"] == pytest.approx(cvlabs["metrics"]["val_bleu1"])


def test_the_students_captioner_is_refused_on_a_gpu_before_any_work(cvlab, tmp_path):
    root = course_folder(tmp_path / "mine")
    result = cvlab("train", "model=impl_caption_rnn", f"model.impl={root}", *CAPTIONS,
                   "device=cuda")
    assert result.returncode == 2
    assert "trains your CaptioningRNN on the CPU" in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_the_adapter_hands_tensors_and_restores_a_checkpoint_in_place():
    import numpy as np
    import torch

    from cvlab.errors import UserError
    from cvlab.models.impl_nets import YourCaptioner
    from cvlab.models.nets.captioning import CaptioningRNN

    words = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "b": 4}
    net = CaptioningRNN(words, input_dim=6, wordvec_dim=4, hidden_dim=5,
                        generator=torch.Generator().manual_seed(0))
    captioner = YourCaptioner(net, torch.float32)
    features = np.random.RandomState(0).randn(3, 6).astype(np.float32)
    captions = np.array([[1, 3, 4, 2, 0]] * 3)
    before = captioner.loss(features, captions).item()
    saved = {name: value.detach().clone() for name, value in captioner.params.items()}
    with torch.no_grad():
        for value in captioner.params.values():
            value.add_(1.0)
    assert captioner.loss(features, captions).item() != pytest.approx(before)
    captioner.load_state_dict(saved)
    assert captioner.loss(features, captions).item() == pytest.approx(before, rel=1e-7)
    ids = captioner.sample(features, max_length=4)
    assert ids.shape == (3, 4) and ids.dtype == np.int64
    with pytest.raises(ValueError, match="the checkpoint holds params"):
        captioner.load_state_dict({"W_proj": saved["W_proj"]})
    net.params = {name: value.detach() for name, value in net.params.items()}
    with pytest.raises(UserError, match="self.params must be a dict of torch tensors"):
        YourCaptioner(net, torch.float32)


@pytest.mark.slow
def test_the_captioning_part_trains_the_students_captioner(cvlab, tmp_path):
    root = course_folder(tmp_path / "mine", {"classifiers/rnn_pytorch.py": TENSOR_CAPTIONER})
    result = cvlab("reproduce", "part=captioning", "profile=quick", f"impl={root}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "the student's CaptioningRNN rnn 512" in result.stdout  # in a joblib worker
    items = {item["id"]: item for item in reproduction_of(tmp_path)["items"]}
    for key in ("captioning.overfit.final_loss", "captioning.overfit.train_samples"):
        assert (items[key]["verdict"], items[key]["implementation"]) == ("held", "yours")
    (config,) = (tmp_path / "outputs" / "reproduce").glob("*/*/*/config.yaml")
    assert yaml.safe_load(config.read_text())["model"]["type"] == "impl_captioning"
    assert no_student_module_here()


SLOW_AFFINE = """
    import time
    from cvlab.layers import affine_forward as _correct_affine_forward

    def affine_forward(x, w, b):
        time.sleep(60)  # the signal arrives while the items are measured
        return _correct_affine_forward(x, w, b)
"""


def test_a_signal_while_items_are_measured_still_writes_the_report(tmp_path):
    root = course_folder(tmp_path / "mine", {"layers.py": SLOW_AFFINE})
    process = start(tmp_path, "reproduce", "part=layers", "profile=quick", f"impl={root}")
    wait_for("sweep_plan.json", tmp_path / "outputs", process)
    time.sleep(3)
    process.send_signal(signal.SIGTERM)
    _, stderr = finish(process, timeout=30)
    assert process.returncode == 143
    assert "interrupted by SIGTERM; the report, with the unfinished items not run" \
        in one_line(stderr)
    reproduction = reproduction_of(tmp_path)
    assert reproduction["interrupted"] == "interrupted by SIGTERM"
    not_run = [item for item in reproduction["items"] if item["verdict"] == "not_run"]
    assert not_run and all("before it was measured" in item["detail"] for item in not_run)
    assert (next((tmp_path / "outputs" / "reproduce").glob("*/*")) / "report.html").is_file()


def test_a_student_sys_exit_fails_the_run_in_one_line(cvlab_script, tmp_path):
    root = course_folder(tmp_path / "mine", {"classifiers/fc_net.py": "import sys\nsys.exit(0)"})
    result = cvlab_script("train", "model=impl_fc", f"model.impl={root}", *TINY_DATA, "epochs=1",
                          "progress=false", f"outputs_root={tmp_path / 'outputs'}",
                          env={"CVLAB_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 2
    assert "your code called sys.exit(0) while importing cs231n/classifiers/fc_net.py" \
        in one_line(result.stderr)
    (run_dir,) = (tmp_path / "outputs" / "train").glob("*/*")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
