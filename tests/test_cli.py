"""The CLI as a user meets it: help, unknown commands, bad overrides, exit codes; in process,
plus a few runs of the installed console script."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cvlab.cli import COMMANDS


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("args", [(), ("--help",)])
def test_help_lists_every_command_one_line_each(cvlab, args):
    result = cvlab(*args)
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)


def test_command_help_shows_config_groups(cvlab):
    result = cvlab("train", "--help")
    assert result.returncode == 0, result.stderr
    for group in ("model:", "dataset:", "optimizer:", "device:", "launcher:"):
        assert group in result.stdout
    assert "bn_fc" in result.stdout


def test_unknown_command(cvlab):
    assert_one_line_error(cvlab("trian"), "unknown command 'trian'", "train", "gradcheck")


def test_unknown_action(cvlab):
    assert_one_line_error(cvlab("data", "frobnicate"), "unknown action 'frobnicate'", "info, fetch")


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("optimizer.learning_rate=0", ("optimizer.learning_rate=0", "> 0")),
        ("optimizer.learning_rate=-1e-3", ("optimizer.learning_rate=-0.001", "> 0")),
        ("batch_size=0", ("batch_size=0", "> 0")),
        ("model.dropout_keep_ratio=1.5", ("model.dropout_keep_ratio=1.5", "(0, 1]")),
        ("model.dropout_keep_ratio=0", ("model.dropout_keep_ratio=0", "(0, 1]")),
        ("model=resnet9000", ("model=resnet9000", "bn_fc")),
        ("model.type=resnet9000", ("model.type='resnet9000'", "model=<option>")),
        ("epochz=3", ("epochz",)),
        ("model.weight_scal=1", ("model.weight_scal", "weight_scale")),
        ("epochs=many", ("epochs='many'", "an integer")),
        ("model.normalization=groupnorm", ("model.normalization='groupnorm'", "batchnorm")),
        ("epochs=${nosuch}", ("Interpolation key 'nosuch' not found",)),
        ("resume=", ("resume=''", "latest_sweep")),
    ],
)
def test_bad_override_fails_before_any_work(cvlab, tmp_path, override, fragments):
    result = cvlab("train", override, f"outputs_root={tmp_path / 'outputs'}")
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "outputs").exists(), "a rejected config must not create a run folder"


def test_a_deleted_group_is_one_line(cvlab, tmp_path):
    result = cvlab("train", "model=fc", "~model", f"outputs_root={tmp_path / 'outputs'}")
    assert_one_line_error(result, "missing mandatory value: model")
    assert not (tmp_path / "outputs").exists()


def test_bad_first_value_of_a_sweep_is_caught_before_launch(cvlab, tmp_path):
    result = cvlab("train", "-m", "batch_size=0,10", f"outputs_root={tmp_path / 'outputs'}")
    assert_one_line_error(result, "batch_size=0")
    assert not (tmp_path / "outputs").exists()


def test_unknown_model_key_lists_the_chosen_models_keys_only(cvlab, tmp_path):
    result = cvlab("train", "model=cnn", "model.num_filter=3", f"outputs_root={tmp_path / 'o'}")
    assert_one_line_error(result, "did you mean model.num_filters?", "filter_size")
    assert "hidden_dims" not in result.stderr


def test_same_second_runs_get_their_own_folders(cvlab, tmp_path):
    for _ in range(2):
        result = cvlab("gradcheck", "layer=relu", f"outputs_root={tmp_path / 'outputs'}")
        assert result.returncode == 0, result.stderr
    runs = sorted((tmp_path / "outputs" / "gradcheck").glob("*/*"))
    assert len(runs) == 2
    for run in runs:
        assert run.name.count("-") == 3 and len(run.name.split("-")[-1]) == 6  # H-M-S-microseconds
        assert {"config.yaml", "summary.json", "gradcheck.log"} <= {p.name for p in run.iterdir()}


# The installed console script, as a subprocess: a handful of tests prove the entry point,
# its exit codes and one-line errors; the rest of the suite calls cvlab.cli.main in process.

def test_console_script_help_and_exit_0(cvlab_script):
    result = cvlab_script("--help")
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)


def test_console_script_user_errors_are_one_line_and_exit_2(cvlab_script, tmp_path):
    assert_one_line_error(cvlab_script("trian"), "unknown command 'trian'")
    result = cvlab_script("train", "batch_size=0", f"outputs_root={tmp_path / 'outputs'}")
    assert_one_line_error(result, "batch_size=0", "> 0")
    assert not (tmp_path / "outputs").exists()


def test_a_numpy_gradcheck_does_not_import_torch(tmp_path):
    code = ("import sys; from cvlab.cli import main; "
            f"code = main(['gradcheck', 'layer=relu', 'outputs_root={tmp_path / 'outputs'}']); "
            "print('exit', code, 'torch imported:', 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "exit 0 torch imported: False"
