"""Keys appended with `+key=value` or `++key=value` are checked like any override: a key the
schema does not have is refused in one line with a did-you-mean (exit 2, before any work), in
every command and every job of a sweep; `++key=value` on a key the schema has sets it, and
`+group=option` and Hydra's own `hydra.*` keys keep their meaning."""

from __future__ import annotations

import pytest
from conftest import TINY_DATA
from omegaconf import open_dict

from cvlab.config.compose import compose, compose_plan
from cvlab.config.train import TrainConfig
from cvlab.config.typed import UnknownKeyError, typed
from cvlab.errors import UserError

COMMANDS = ["train", "gradcheck", "plot", "eval", "data", "bench", "runs"]


def one_line(result) -> str:
    assert result.returncode == 2, result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("override, expected", [
    ("++model.weight_scal=1", "unknown key 'model.weight_scal' (did you mean "
                              "model.weight_scale?); valid keys in model: type, hidden_dims"),
    ("+model.weight_scal=1", "unknown key 'model.weight_scal' (did you mean "
                             "model.weight_scale?)"),
    ("+model.foo=1", "unknown key 'model.foo'; valid keys in model: type, hidden_dims"),
    ("+trainer.fast_dev_run=true", "unknown key 'trainer'; valid keys: model, dataset"),
    ("++epoch=3", "unknown key 'epoch' (did you mean epochs?)"),
    ("+optimizer.learning_rat=1", "did you mean optimizer.learning_rate?"),
])
def test_an_appended_key_outside_the_schema_is_refused_before_any_work(cvlab, tmp_path,
                                                                      override, expected):
    line = one_line(cvlab("train", *TINY_DATA, override))
    assert line.startswith("cvlab train: ") and expected in line
    assert not (tmp_path / "outputs").exists(), "a refused config must not create a folder"


def test_a_plain_and_an_appended_misspelling_get_the_same_line(cvlab):
    plain = one_line(cvlab("train", "model.weight_scal=1"))
    assert one_line(cvlab("train", "++model.weight_scal=1")) == plain


def test_the_console_script_refuses_it_in_one_line(cvlab_script):
    line = one_line(cvlab_script("train", "+trainer.fast_dev_run=true"))
    assert line.startswith("cvlab train: unknown key 'trainer'")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_an_appended_key(command):
    with pytest.raises(UserError, match="^unknown key 'bogus_key'; valid keys: "):
        compose_plan(command, ["+bogus_key=1"], multirun=False)


def test_every_job_of_a_sweep_is_checked_and_named(cvlab, tmp_path):
    line = one_line(cvlab("train", *TINY_DATA, "-m", "seed=1,2", "+model.foo=1,2"))
    assert "sweep job 0 of 4 (seed=1 +model.foo=1): unknown key 'model.foo'" in line
    line = one_line(cvlab("train", *TINY_DATA, "-m", "seed=1,2", "++model.weight_scal=1"))
    assert "sweep job 0 of 2 (seed=1): unknown key 'model.weight_scal'" in line
    assert not (tmp_path / "outputs").exists()


def test_the_points_of_a_sampling_sweeper_are_checked_too():
    with pytest.raises(UserError, match="unknown key 'model.foo'"):
        compose_plan("train", ["hparams_search=bn_fc_optuna", "+model.foo=1"], multirun=True)


def test_force_adding_a_key_the_schema_has_sets_it():
    def config(*overrides: str) -> TrainConfig:
        (_, cfg), = compose_plan("train", list(overrides), multirun=False).jobs
        return cfg

    assert config("++model.weight_scale=0.5", "++seed=7") == \
        config("model.weight_scale=0.5", "seed=7")
    assert config("++model.weight_scale=0.5").model.weight_scale == 0.5


def test_appending_a_config_group_option_still_works():
    (_, cfg), = compose_plan("train", ["model=bn_fc", "+sweep_point=baseline_batch5"],
                             multirun=False).jobs
    assert cfg.batch_size == 5 and cfg.baseline is True


def test_hydra_keys_keep_hydras_meaning():
    plan = compose_plan("train", ["+hydra.job.env_set.CVLAB_APPENDED=1"], multirun=False)
    assert plan.base.hydra.job.env_set.CVLAB_APPENDED == "1"
    assert not hasattr(plan.jobs[0][1], "hydra")


def test_typing_a_composition_with_a_key_outside_its_schema_fails_naming_it():
    """The one place: OmegaConf lets a key into a structured config under open_dict (as Hydra
    appends one) and to_object would set it as a stray attribute; typed() refuses it."""
    composed = compose("train", [])
    assert isinstance(typed("train", composed), TrainConfig)
    with open_dict(composed.model):
        composed.model.fast_dev_run = True
    with pytest.raises(UnknownKeyError, match="unknown key 'model.fast_dev_run'; valid keys in "
                                              "model: type, hidden_dims"):
        typed("train", composed)
