"""The config layer: every config file composes typed by its schema, every group is strict,
every job of a sweep is checked before work, and Hydra's spellings work as in any Hydra app."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CVLAB, TINY_DATA

from cvlab.config.compose import compose_plan, hydra_context
from cvlab.config.store import PRIMARY_SCHEMAS
from cvlab.paths import config_dir

CONFIGS = config_dir()
COMMANDS = ["train", "gradcheck", "plot", "eval", "data", "bench", "runs", "reproduce"]
TRAIN_GROUPS = sorted(p.name for p in CONFIGS.iterdir() if p.is_dir() and p.name != "hydra")
OPTIONS = [(group, path.stem) for group in TRAIN_GROUPS
           for path in sorted((CONFIGS / group).glob("*.yaml"))]


@pytest.fixture(scope="module")
def hydra():
    """One Hydra initialization for the module's compositions (they are then cheap)."""
    with hydra_context() as initialized:
        yield initialized


def one_line(result) -> str:
    assert result.returncode == 2, result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_every_yaml_file_is_covered():
    covered = {CONFIGS / f"{c}.yaml" for c in COMMANDS} | {CONFIGS / "cvlab_base.yaml"}
    covered |= {CONFIGS / g / f"{o}.yaml" for g, o in OPTIONS}
    covered |= set((CONFIGS / "hydra").rglob("*.yaml"))
    assert {"model", "dataset", "optimizer", "device", "launcher", "sweep", "experiment",
            "hparams_search"} <= set(TRAIN_GROUPS)
    assert set(CONFIGS.rglob("*.yaml")) == covered


@pytest.mark.parametrize("command", COMMANDS)
def test_primary_config_composes_typed(command, hydra):
    (_, config), = compose_plan(command, [], multirun=False, hydra=hydra).jobs
    assert isinstance(config, PRIMARY_SCHEMAS[command])


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_and_every_job_it_defines_composes_and_checks(group, option, hydra):
    overrides = [f"{group}={option}"]
    if group == "sweep_point":
        overrides = [f"+{group}={option}", "model=bn_fc"]
    elif group in ("device", "optimizer"):  # the PyTorch models use every option
        overrides.append("model=torch_fc")
    elif (group, option) in (("dataset", "coco"), ("dataset", "shapes_captions")):
        overrides.append("model=caption_rnn")
    plan = compose_plan("train", overrides, multirun=False, hydra=hydra)
    if plan.multirun:  # a sweep or search: every job (or checked point) composed and checked
        assert plan.jobs
    for _, config in plan.jobs:
        assert config.model.type and config.optimizer.name


def test_yaml_options_state_only_what_differs_from_their_schema():
    # bn_fc is fc_net_schema with normalization: batchnorm; nothing else is repeated
    text = (CONFIGS / "model" / "bn_fc.yaml").read_text()
    body = [line for line in text.splitlines() if line and not line.startswith(("#", " ", "-"))]
    assert body == ["defaults:", "normalization: batchnorm"]


@pytest.mark.parametrize("override, expected", [
    ("experiment=bn_depp", "did you mean experiment=bn_deep?"),
    ("sweep=weight_scal", "did you mean sweep=weight_scale?"),
    ("model=bn_fcc", "did you mean model=bn_fc?"),
    ("dataset=cifar", "did you mean dataset=cifar10?"),
    ("optimizer=adamm", "did you mean optimizer=adam?"),
    ("device=cpuu", "did you mean device=cpu?"),
    ("launcher=jobllib", "did you mean launcher=joblib?"),
    ("hparams_search=bn_fc_optna", "did you mean hparams_search=bn_fc_optuna?"),
    ("model.weight_scal=1", "did you mean model.weight_scale?"),
    ("optimizer.learning_rat=1", "did you mean optimizer.learning_rate?"),
    ("epoch=3", "did you mean epochs?"),
])
def test_a_typo_in_any_group_or_key_fails_with_a_did_you_mean(cvlab, tmp_path, override,
                                                             expected):
    line = one_line(cvlab("train", override))
    assert expected in line
    assert not (tmp_path / "outputs").exists(), "a rejected config must not create a folder"


@pytest.mark.parametrize("override, expected", [
    ("trainer.epochs=3", "unknown key 'trainer'; valid keys: model, dataset, optimizer"),
    ("model=resnet", "unknown option model=resnet; valid options: bn_fc, caption_lstm"),
])
def test_a_name_with_no_close_match_lists_what_is_valid(cvlab, override, expected):
    assert expected in one_line(cvlab("train", override))


@pytest.mark.parametrize("override, expected", [
    ("seed=-1", "seed=-1 is not allowed: an integer in [0, 2**32)"),
    ("optimizer.learning_rate=inf", "a finite number > 0"),
    ("optimizer.schedule=bogus", "one of none, step, warmup_linear, onecycle"),
    ("optimizer.schedule=onecycle", "numpy models (model.type=fc_net) do not use it"),
    ("device.amp=bf16", "numpy models (model.type=fc_net) do not use it"),
    ("optimizer=adamw", "adamw is for PyTorch models"),
    ("baseline=true", "has no normalization to drop"),
    ("dataset.shapes_train=5", "dataset=auto"),
    ("model.dropout_keep_ratio=1.5", "(0, 1]"),
    ("epochs=many", "epochs='many' is not allowed"),
])
def test_bad_values_and_unused_fields_fail_before_any_work(cvlab, tmp_path, override, expected):
    assert expected in one_line(cvlab("train", "dataset=cifar10", override)) or \
        expected in one_line(cvlab("train", override))
    assert not (tmp_path / "outputs").exists()


def test_a_bad_third_value_fails_the_sweep_before_its_first_job(cvlab, tmp_path):
    result = cvlab("train", *TINY_DATA, "epochs=1", "-m", "optimizer.learning_rate=1e-3,1e-2,-5")
    line = one_line(result)
    assert "sweep job 2 of 3 (optimizer.learning_rate=-5)" in line and "> 0" in line
    assert not (tmp_path / "outputs").exists()  # no job ran, no folder


def test_basic_launcher_glob_range_and_m_in_the_middle(cvlab, tmp_path):
    result = cvlab("train", *TINY_DATA, "epochs=1", "hydra/launcher=basic", "-m",
                   "model=glob(ln_*)", "batch_size=range(25,75,25)", "progress=false")
    assert result.returncode == 0, result.stderr
    (summary,) = (tmp_path / "outputs").rglob("sweep_summary.json")
    rows = json.loads(summary.read_text())
    assert sorted((r["model_type"], r["normalization"], r["batch_size"]) for r in rows) == [
        ("fc_net", "layernorm", 25), ("fc_net", "layernorm", 50)]


def test_a_continuous_range_needs_a_sampling_sweeper(cvlab):
    line = one_line(cvlab("train", *TINY_DATA, "-m", "optimizer.learning_rate=interval(1e-4,1e-2)"))
    assert "hydra/sweeper=optuna" in line


def test_optuna_sweeper_optimizes_the_objective(cvlab, tmp_path):
    result = cvlab("train", *TINY_DATA, "model=bn_fc", "epochs=1", "progress=false", "-m",
                   "hydra/sweeper=optuna", "hydra/launcher=basic", "hydra.sweeper.n_trials=3",
                   "hydra.sweeper.direction=maximize", "hydra.sweeper.sampler.seed=0",
                   "optimizer.learning_rate=tag(log,interval(1e-4,1e-2))")
    assert result.returncode == 0, result.stderr
    assert "Best value" in result.stdout + result.stderr
    (summary,) = (tmp_path / "outputs").rglob("sweep_summary.json")
    rows = json.loads(summary.read_text())
    assert len(rows) == 3 and all(r["status"] == "completed" for r in rows)
    (results,) = (tmp_path / "outputs").rglob("optimization_results.yaml")
    assert f"best_value: {max(r['best_val_acc'] for r in rows)}" in results.read_text()


def test_cfg_job_lists_every_schema_field(cvlab):
    from cvlab.config.train import TrainConfig

    result = cvlab("train", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    top = {line.split(":")[0] for line in result.stdout.splitlines()
           if line and not line.startswith(" ")}
    assert top == {f.name for f in dataclasses.fields(TrainConfig)}
    for field in ("threads:", "amp:", "channels_last:", "compile:", "schedule:",
                  "weight_decay:", "train_eval_samples:"):
        assert field in result.stdout


def test_each_command_help_shows_only_its_own_groups_and_every_field(cvlab):
    train = cvlab("train", "--help").stdout
    assert "model: bn_fc" in train and "hparams_search: bn_fc_optuna" in train
    assert "weight_decay: 0.0" in train and "_schema" not in train
    gradcheck = cvlab("gradcheck", "--help").stdout
    assert "model:" not in gradcheck and "layer: all" in gradcheck
    data = cvlab("data", "--help").stdout
    assert "dataset: [auto]" in data and "model:" not in data


def test_renamed_keys_still_work_with_a_notice(cvlab):
    result = cvlab("train", "num_train_samples=5", "epochs=0")
    assert "num_train_samples is now called train_eval_samples" in result.stderr
    assert "epochs=0 is not allowed" in result.stderr  # the rest of the line still checked


def test_commands_that_produce_no_run_create_no_folder(cvlab, tmp_path):
    assert cvlab("data", "info", "dataset=synthetic").returncode == 0
    assert not (tmp_path / "outputs").exists()
    assert not list(tmp_path.glob("*.log"))


def test_version_and_python_dash_m():
    from cvlab import __version__

    version = subprocess.run([CVLAB, "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"cvlab {__version__}"
    helped = subprocess.run([sys.executable, "-m", "cvlab", "--help"], capture_output=True,
                            text=True)
    assert helped.returncode == 0 and "commands:" in helped.stdout


def test_bash_completion_as_bash_drives_it(tmp_path):
    script = r'''
eval "$(cvlab -sc install=bash)"
complete_line() {
    COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}
    read -r -a COMP_WORDS <<< "$COMP_LINE"
    [[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    hydra_bash_completion
    echo "${COMPREPLY[*]}"
}
complete_line "cvlab tr"
complete_line "cvlab train model=bn"
complete_line "cvlab train model.weight_sc"
complete_line "cvlab data "
'''
    env = dict(os.environ, PATH=f"{Path(CVLAB).parent}:{os.environ['PATH']}")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=120)
    assert result.stdout.splitlines() == ["train", "model=bn_fc", "model.weight_scale=",
                                          "info fetch"], result.stderr


def test_a_quoted_worker_traceback_folds_to_its_message_and_last_line():
    from cvlab.config.compose import one_line

    err = RuntimeError('A task has failed to un-serialize.\n"""\nTraceback (most recent call '
                       'last):\n  File "x.py", line 1, in get\n    return loads(res)\n'
                       "ModuleNotFoundError: No module named 'cvlab.models.mine'\n\"\"\"")
    assert one_line(err) == ("A task has failed to un-serialize.; ModuleNotFoundError: No module "
                             "named 'cvlab.models.mine'")
