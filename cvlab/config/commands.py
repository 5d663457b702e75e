"""Schemas of the commands other than train, and the validator of each command."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cvlab.config import build, check, check_choice
from cvlab.config.train import DatasetConfig, validate_train


@dataclass
class GradcheckConfig:
    layer: str = "all"
    seed: int = 231
    outputs_root: str = "outputs"


@dataclass
class PlotConfig:
    run: str = "latest"  # a run or sweep folder, or `latest`
    outputs_root: str = "outputs"
    show_table: bool = True


@dataclass
class DataConfig:
    action: str = "info"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    outputs_root: str = "outputs"

    def __post_init__(self) -> None:
        check_choice("action", self.action, ("info", "fetch"))


@dataclass
class BenchConfig:
    action: str = "layers"
    repeats: int = 5
    warmup: int = 1
    threads: int | None = None
    quick: bool = False  # smaller shapes, for tests
    outputs_root: str = "outputs"

    def __post_init__(self) -> None:
        check_choice("action", self.action, ("layers", "train"))
        check(self.repeats > 0, "repeats", self.repeats, "an integer > 0")
        check(self.warmup >= 0, "warmup", self.warmup, "an integer >= 0")


def _schema(cls: type) -> Callable[[Any], Any]:
    return lambda cfg: build(cls, cfg)


VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "train": validate_train,
    "gradcheck": _schema(GradcheckConfig),
    "plot": _schema(PlotConfig),
    "data": _schema(DataConfig),
    "bench": _schema(BenchConfig),
}


def _keys(schema: type, prefix: str = "") -> set[str]:
    keys = set()
    for name, hint in typing.get_type_hints(schema).items():
        if name == "family":
            continue
        keys.add(prefix + name)
        if dataclasses.is_dataclass(hint):
            keys |= _keys(hint, f"{prefix}{name}.")
    return keys


def schema_keys(command: str) -> set[str]:
    """Every dotted key the command's schema accepts (model keys: of any model type)."""
    from cvlab.config.train import TrainConfig
    from cvlab.models.registry import schemas

    if command != "train":
        return _keys({"gradcheck": GradcheckConfig, "plot": PlotConfig, "data": DataConfig,
                      "bench": BenchConfig}[command])
    keys = _keys(TrainConfig)
    for schema in schemas().values():
        keys |= _keys(schema, "model.")
    return keys


def model_keys(model_type: str) -> set[str]:
    """The dotted `model.*` keys of one model type (all model types when it is unknown)."""
    from cvlab.models.registry import schemas

    known = schemas()
    types = [model_type] if model_type in known else list(known)
    return set().union(*(_keys(known[t], "model.") for t in types))


def validate(command: str, cfg: Any) -> Any:
    """Check the composed config of `command`; return its typed config object."""
    return VALIDATORS[command](cfg)
