"""`cvlab gradcheck impl=<folder>`: a student's own functions and models judged in worker
processes: passes, wrong forward, wrong backward, not implemented, missing, crashed, timed out.

The folders are built here (impl_fixtures): the course's layout re-exporting cvlab's correct
code under the course's names, and the same with one defect per function. A folder with many
defects is judged once, so each test also shows that the other checks still pass.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from impl_fixtures import (
    AFFINE_BACKWARD_ABORTS,
    AFFINE_RELU_ALLOCATES,
    CONV_CRASHES,
    DGAMMA_TWICE,
    FORGETS_RUNNING_MEAN,
    MAXPOOL_BACKWARD_RAISES,
    NORMALIZES_IN_PLACE,
    RELU_LOOPS,
    RELU_SKELETON,
    RESEEDS_GLOBAL_RNG,
    SOFTMAX_EXITS,
    SVM_SKELETON,
    combine,
    course_folder,
    single_layers_file,
)

from cvlab.impl.course import find_layout
from cvlab.impl.remote import Implementation
from cvlab.impl.verdicts import UNIT_BY_NAME, judge
from cvlab.impl.wire import WireError, decode, encode

SEED = (231,)
BROKEN_LAYERS = combine(DGAMMA_TWICE, FORGETS_RUNNING_MEAN, NORMALIZES_IN_PLACE,
                        RESEEDS_GLOBAL_RNG, RELU_SKELETON, SVM_SKELETON, MAXPOOL_BACKWARD_RAISES,
                        CONV_CRASHES, AFFINE_BACKWARD_ABORTS, SOFTMAX_EXITS,
                        "del spatial_groupnorm_forward, spatial_groupnorm_backward\n")


def verdicts(folder: Path, names: list[str], log: Path, timeout_s: float = 60,
             memory_gb: float = 4) -> dict:
    """{check: UnitResult} of the named checks on `folder`, one seed."""
    with Implementation(find_layout(folder), log, timeout_s, memory_gb) as impl:
        return {name: judge(impl, UNIT_BY_NAME[name], SEED) for name in names}


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> dict:
    """The verdicts on a folder with a defect in most functions of layers.py, a huge
    allocation in layer_utils.py and no optim.py (memory_gb=1)."""
    root = course_folder(tmp_path_factory.mktemp("broken"),
                         {"layers.py": BROKEN_LAYERS, "layer_utils.py": AFFINE_RELU_ALLOCATES},
                         without=("optim.py",))
    names = ["affine", "relu", "softmax", "svm", "batchnorm", "layernorm", "dropout", "conv",
             "maxpool", "spatial_batchnorm", "spatial_groupnorm", "affine_relu", "adam",
             "conv_fast", "maxpool_fast", "conv_relu"]
    return verdicts(root, names, root / "impl_output.log", memory_gb=1)


def test_wrong_backward_names_the_gradient_its_error_and_bound(broken):
    result = broken["batchnorm"]
    assert result.verdict == "wrong backward"
    assert result.detail.startswith("dgamma (seed 231): norm error 3.33e-01 > bound 1e-07")
    failing = [row.what for row in result.rows if not row.passed]  # dx and dbeta pass
    assert failing == ["dgamma (seed 231)", "dgamma (train, x (4, 5), first call)"]


def test_a_forgotten_running_mean_is_a_wrong_forward_with_its_index(broken):
    result = broken["spatial_batchnorm"]
    assert result.verdict == "wrong forward"
    assert "running_mean in the param dict after the call: largest difference at (0,)" \
        in result.detail


def test_a_cache_aliasing_its_input_is_a_wrong_forward(broken):
    result = broken["layernorm"]
    assert result.verdict == "wrong forward"
    assert "wrote into its input x (largest change" in result.detail


def test_dropout_that_reseeds_numpys_global_rng_is_a_wrong_forward(broken):
    result = broken["dropout"]
    assert result.verdict == "wrong forward"
    assert "seed 123): moved numpy's global RNG: with a seed, draw the mask from " \
        "np.random.RandomState(seed) instead of np.random.seed(seed)" in result.detail
    outputs = [row for row in result.rows if row.what.endswith(": out")]
    assert outputs and all(row.passed for row in outputs)  # its masks are the course's


@pytest.mark.parametrize("check, detail", [
    ("relu", "relu_forward returns None as its output 1 of 2"),
    ("svm", "svm_loss returns None"),
    ("maxpool", "max_pool_backward_naive raises NotImplementedError"),
])
def test_skeleton_placeholders_are_not_implemented(broken, check, detail):
    assert (broken[check].verdict, broken[check].detail) == ("not implemented", detail)


def test_missing_functions_and_files(broken):
    assert broken["spatial_groupnorm"].verdict == "missing"
    assert broken["spatial_groupnorm"].detail == \
        "cs231n/layers.py has no spatial_groupnorm_forward"
    assert (broken["adam"].verdict, broken["adam"].detail) == \
        ("missing", "cs231n/optim.py is not there")


def test_a_crash_shows_the_users_own_traceback(broken):
    result = broken["conv"]
    assert result.verdict == "crashed"
    assert result.detail.startswith("conv_forward_naive raised ValueError: cannot reshape")
    lines = result.trace.splitlines()
    assert lines[0] == "Traceback (your code, most recent call last):"
    assert lines[1].endswith("cs231n/layers.py\", line 87, in conv_forward_naive")
    assert "cvlab" not in result.trace  # their frames only


def test_an_abort_in_their_code_ends_only_its_check(broken):
    result = broken["affine"]
    assert result.verdict == "crashed"
    assert result.detail == "the worker died of SIGABRT while running affine_backward"
    assert "Fatal Python error: Aborted" in result.trace
    assert "cs231n/layers.py\", line 94, in affine_backward" in result.trace


def test_sys_exit_and_a_huge_allocation_are_crashes(broken):
    assert broken["softmax"].verdict == "crashed"
    assert broken["softmax"].detail == "softmax_loss called sys.exit(3)"
    allocation = broken["affine_relu"]
    assert allocation.verdict == "crashed"
    assert "MemoryError: Unable to allocate 2.00 GiB" in allocation.detail
    assert "layer_utils.py\", line 18, in affine_relu_forward" in allocation.trace


def test_the_other_checks_of_the_broken_folder_pass(broken):
    for name in ("conv_fast", "maxpool_fast", "conv_relu"):
        assert broken[name].verdict == "passes", (name, broken[name].detail)
        assert broken[name].rows and all(row.passed for row in broken[name].rows)


def test_an_infinite_loop_times_out_where_it_runs_and_the_next_check_runs(tmp_path):
    root = single_layers_file(tmp_path / "mine", RELU_LOOPS)
    results = verdicts(root, ["relu", "affine", "conv_fast"], tmp_path / "log", timeout_s=2)
    relu = results["relu"]
    assert relu.verdict == "timed out"
    assert relu.detail == "relu_forward was still running: no answer within timeout_s=2 s"
    assert relu.trace.startswith("still running at (most recent call first):")
    assert "layers.py\", line 31, in relu_forward" in relu.trace
    assert relu.seconds < 10
    assert results["affine"].verdict == "passes"
    assert (results["conv_fast"].verdict, results["conv_fast"].detail) == \
        ("missing", "layers.py has no conv_forward_fast")  # one file: every name is there


def test_a_model_whose_loss_forgets_its_regularization_is_a_wrong_forward(tmp_path):
    no_reg = """
        from cvlab.models.fc_net import FullyConnectedNet as _CorrectNet

        class FullyConnectedNet(_CorrectNet):
            def loss(self, X, y=None):
                reg, self.reg = self.reg, 0.0
                try:
                    return super().loss(X, y)
                finally:
                    self.reg = reg
    """
    skeleton = """
        class ThreeLayerConvNet:
            def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7,
                         hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0,
                         dtype=None):
                self.params = {}
    """
    root = course_folder(tmp_path / "mine", {"classifiers/fc_net.py": no_reg,
                                             "classifiers/cnn.py": skeleton})
    results = verdicts(root, ["fc_net", "cnn"], tmp_path / "log")
    fc_net = results["fc_net"]
    assert fc_net.verdict == "wrong forward"
    assert fc_net.detail.startswith("layers.fc_net.initial_loss.reg3_14: 2.30164821577")
    assert "the course's 7.052114776533016: course value error 4.75e+00 > bound 1e-10" \
        in fc_net.detail
    assert any(row.what.startswith("layers.fc_net.initial_loss.reg0:") and row.passed
               for row in fc_net.rows)
    assert (results["cnn"].verdict, results["cnn"].detail) == \
        ("not implemented", "ThreeLayerConvNet.__init__ leaves params empty")


def test_recurrent_layers_are_checked_through_autograd_in_the_worker(tmp_path):
    cut = """
        def rnn_forward(x, h0, Wx, Wh, b):
            states, prev_h = [], h0
            for t in range(x.shape[1]):
                prev_h = rnn_step_forward(x[:, t], prev_h.detach(), Wx, Wh, b)
                states.append(prev_h)
            return torch.stack(states, dim=1)
    """
    root = course_folder(tmp_path / "mine", {"rnn_layers_pytorch.py": cut})
    results = verdicts(root, ["rnn_step", "rnn", "captioning_rnn"], tmp_path / "log")
    assert results["rnn_step"].verdict == "passes", results["rnn_step"].detail
    assert results["captioning_rnn"].verdict == "passes", results["captioning_rnn"].detail
    rnn = results["rnn"]
    assert rnn.verdict == "wrong backward"
    assert rnn.detail.startswith("dh0 (seed 231): norm error")


def test_the_command_writes_the_table_csv_and_summary_and_never_imports_their_code(
        cvlab, tmp_path):
    root = course_folder(tmp_path / "mine", {"layers.py": DGAMMA_TWICE})
    good = cvlab("gradcheck", f"impl={root}", "layer=layernorm", "seeds=1")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "layernorm (cs231n/layers.py: layernorm_forward, layernorm_backward): passes" \
        in good.stdout
    bad = cvlab("gradcheck", f"impl={root}", "layer=batchnorm", "seeds=2")
    assert bad.returncode == 1
    assert "wrong backward: dgamma (seed 232 of 231, 232): norm error 3.33e-01 > bound " \
           "1e-07" in bad.stdout
    assert not [name for name in sys.modules if name == "cs231n" or name.startswith("cs231n.")]
    run_dir = max((tmp_path / "outputs" / "gradcheck").glob("*/*"))
    with (run_dir / "gradcheck.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["verdict"] for row in rows} == {"wrong backward"}
    assert [row["what"] for row in rows if row["passed"] == "False"] == [
        "dgamma (seed 232 of 231, 232)", "dgamma (train, x (4, 5), first call)"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["metrics"]["failed_layers"] == ["batchnorm"]
    assert summary["details"]["verdicts"] == {"wrong backward": 1}
    assert (run_dir / "impl_output.log").is_file()


@pytest.mark.parametrize("arguments, message", [
    (["impl=/nowhere/at/all"], "impl='/nowhere/at/all' is not allowed: a folder that holds "
                               "your cs231n/ package"),
    (["impl=.", "layer=convv"], "layer=convv is not a check of impl=; valid names: all, affine"),
    (["timeout_s=0"], "timeout_s=0.0 is not allowed: a finite number > 0"),
])
def test_bad_arguments_are_one_line_and_exit_2(cvlab, tmp_path, arguments, message):
    course_folder(tmp_path)
    result = cvlab("gradcheck", *arguments)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_messages_carry_plain_arrays_and_nothing_else():
    message = {"x": np.arange(6.0).reshape(2, 3), "n": np.int64(3), "t": (1, "a", None),
               "scalar": np.array(2.5), "inf": float("inf")}
    decoded = decode(encode(message))
    assert np.array_equal(decoded["x"], message["x"]) and decoded["scalar"].shape == ()
    assert decoded["n"] == 3 and decoded["t"] == [1, "a", None] and decoded["inf"] == np.inf
    with pytest.raises(WireError):
        encode({"x": np.array([object()])})
    forged = encode({"x": np.zeros(2)}).replace(b'"<f8"', b'"|O8"')
    with pytest.raises(WireError):
        decode(forged)


@pytest.mark.slow
def test_a_correct_course_folder_passes_every_check(cvlab, tmp_path):
    root = course_folder(tmp_path / "mine")
    result = cvlab("gradcheck", f"impl={root}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    run_dir = max((tmp_path / "outputs" / "gradcheck").glob("*/*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["details"]["verdicts"] == {"passes": 33}
