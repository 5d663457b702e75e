"""Every config file composes and passes its schema; sweeps sweep over real keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from cvlab.cli import first_of_sweeps
from cvlab.config.commands import schema_keys, validate
from cvlab.paths import config_dir

CONFIGS = config_dir()
COMMANDS = ["train", "gradcheck", "plot", "data", "bench"]
TRAIN_GROUPS = sorted(p.name for p in CONFIGS.iterdir() if p.is_dir() and p.name != "hydra")
OPTIONS = [
    (group, path.stem)
    for group in TRAIN_GROUPS
    for path in sorted((CONFIGS / group).glob("*.yaml"))
]


@pytest.fixture(scope="module", autouse=True)
def hydra_initialized():
    """Initialize Hydra once for the module: composing is then cheap."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def compose_config(name: str, overrides: list[str], hydra: bool = False):
    return compose(config_name=name, overrides=overrides, return_hydra_config=hydra)


def test_every_yaml_file_is_covered():
    covered = {CONFIGS / f"{c}.yaml" for c in COMMANDS} | {CONFIGS / "cvlab_base.yaml"}
    covered |= {CONFIGS / g / f"{o}.yaml" for g, o in OPTIONS}
    covered |= set((CONFIGS / "hydra").rglob("*.yaml"))
    assert {"model", "dataset", "optimizer", "device", "launcher", "sweep", "experiment"} <= set(
        TRAIN_GROUPS
    )
    assert set(CONFIGS.rglob("*.yaml")) == covered


@pytest.mark.parametrize("command", COMMANDS)
def test_primary_config_composes_and_validates(command):
    cfg = compose_config(command, [])
    validate(command, OmegaConf.to_container(cfg, resolve=False))


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_group_option_composes_and_validates(group, option):
    choices = compose_config("train", [], hydra=True).hydra.runtime.choices
    select = f"{group}={option}" if group in choices else f"+{group}={option}"
    cfg = compose_config("train", [select], hydra=True)
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    swept = [f"{key}={value}" for key, value in params.items()]
    keys = schema_keys("train")
    for override in swept:
        key, values = override.split("=", 1)
        key = key.lstrip("+")
        if key in TRAIN_GROUPS:  # a sweep over the options of a config group
            for value in values.split(","):
                assert (CONFIGS / key / f"{value}.yaml").is_file(), override
        else:
            assert key in keys, f"{group}/{option} sweeps an unknown key: {override}"
    # validate the first job of a config-defined sweep too
    first = first_of_sweeps(swept)
    cfg = compose_config("train", [select, *first])
    validate("train", OmegaConf.to_container(cfg, resolve=False))


def test_configs_dir_is_the_packaged_one():
    assert (Path(CONFIGS) / "train.yaml").is_file()
