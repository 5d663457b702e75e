"""The one validation point: a composed config becomes the command's dataclass.

    cfg = typed("train", composed)      # TrainConfig; ConfigError (one line) when not allowed

Hydra has already typed the composition (the schemas are in its ConfigStore); here a key its
schema does not have is refused (Hydra lets `+key=value` and `++key=value` append one, and
OmegaConf.to_object would set it as a stray attribute of the dataclass), the range checks of
the schemas run (their __post_init__), with the full key in the message, and for `cvlab train`
the fields the chosen family or dataset does not use are refused when set: a value that would
be ignored is a mistake worth one line, not a silent default.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cvlab.config.train import (
    DatasetConfig,
    DeviceConfig,
    ModelConfig,
    OptimizerConfig,
    TrainConfig,
)
from cvlab.data.constants import AUTO, IMAGE_DATASETS
from cvlab.errors import UserError
from cvlab.models.registry import ModelSpec, model_types, spec_for
from cvlab.records.files import CONFIG_NAME
from cvlab.validation import ConfigError

# Fields each dataset uses (the others are refused when set).
IMAGE_FIELDS = ("name", "root", "download", "num_train", "num_val", "num_test", "subtract_mean",
                "split_seed")
SYNTHETIC_FIELDS = ("synthetic_train", "synthetic_test", "synthetic_seed")
CAPTION_FIELDS = ("name", "root", "max_train", "pca_features")
SHAPES_FIELDS = ("shapes_train", "shapes_val", "shapes_seed")
DATASET_FIELDS = {
    "cifar10": IMAGE_FIELDS,
    "synthetic": (*IMAGE_FIELDS, *SYNTHETIC_FIELDS),
    "coco": (*CAPTION_FIELDS, "download"),
    "shapes_captions": (*CAPTION_FIELDS, *SHAPES_FIELDS),
}
DATASET_FIELDS["auto"] = tuple(dict.fromkeys((*DATASET_FIELDS["synthetic"],
                                              *DATASET_FIELDS["coco"], *SHAPES_FIELDS)))


class UnknownKeyError(UserError):
    """A key that the schema of its section does not have; the message is one line with a
    did-you-mean and the section's valid keys."""


def typed(command: str, cfg: DictConfig) -> Any:
    """The composed config of `command` as its schema's dataclass, every check run."""
    cfg = without_hydra(cfg)
    refuse_unknown_keys(cfg)
    try:
        result = OmegaConf.to_object(cfg)
    except ConfigError as err:
        raise _in_section(cfg, err) from None
    if command == "train":
        check_train(result)
    return result


def refuse_unknown_keys(node: Any, path: str = "") -> None:
    """UnknownKeyError for the first key of `node` (or of a section below it) that its
    section's dataclass schema does not have: a key Hydra appended (`+model.foo=1`,
    `++model.weight_scal=1`, `+trainer.fast_dev_run=true`) is refused like a misspelled one.
    Sections typed as plain dicts or Any take any key."""
    if not isinstance(node, DictConfig) or node._is_none() or node._is_missing() \
            or node._is_interpolation():
        return
    schema = OmegaConf.get_type(node)
    known = {item.name for item in dataclasses.fields(schema)} \
        if dataclasses.is_dataclass(schema) else None
    for key, child in node.items_ex(resolve=False):
        full_key = f"{path}.{key}" if path else str(key)
        if known is not None and key not in known:
            raise UnknownKeyError(unknown_key_message(full_key, schema))
        refuse_unknown_keys(child, full_key)


def unknown_key_message(full_key: str, schema: Any) -> str:
    """`unknown key 'model.weight_scal' (did you mean model.weight_scale?); valid keys in
    model: ...`: the key, the closest field of its section's schema and all of them."""
    parent, _, name = full_key.rpartition(".")
    fields = [item.name for item in dataclasses.fields(schema)] \
        if schema is not None and dataclasses.is_dataclass(schema) else []
    guess = difflib.get_close_matches(name, fields, n=1)
    prefix = f"{parent}." if parent else ""
    hint = f" (did you mean {prefix}{guess[0]}?)" if guess else ""
    where = f" in {parent}" if parent else ""
    return f"unknown key {full_key!r}{hint}; valid keys{where}: {', '.join(fields)}"


def _in_section(cfg: DictConfig, err: ConfigError) -> ConfigError:
    """`err` named after the section (model, optimizer, ...) whose checks raise it, when one
    does; else as it is (a check of the command's own fields)."""
    for key in cfg:
        node = cfg[key]
        if isinstance(node, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(node)):
            try:
                OmegaConf.to_object(node)
            except ConfigError as section_err:
                return section_err.prefixed(str(key))
    return err


def without_hydra(cfg: DictConfig) -> DictConfig:
    if "hydra" not in cfg:
        return cfg
    from omegaconf import open_dict

    copy = cfg.copy()
    with open_dict(copy):
        del copy["hydra"]
    return copy


def train_config(data: dict[str, Any]) -> TrainConfig:
    """A checked TrainConfig from plain values (the Python API's way to what `cvlab train
    key=value ...` composes): `data["model"]["type"]` picks the model's schema."""
    model = dict(data.get("model") or {})
    try:
        schema = spec_for(model.get("type", "fc_net")).schema
    except ValueError as err:
        raise ConfigError("model.type", model.get("type"), str(err)) from None
    base = OmegaConf.structured(TrainConfig(model=OmegaConf.structured(schema)))
    merged = OmegaConf.merge(base, {**data, "model": model})
    return typed("train", merged)


def stored_train_config(data: dict[str, Any], run_dir: Path) -> TrainConfig:
    """The TrainConfig of a run folder's config.yaml (read by cvlab.records.reader), with the
    former names of renamed keys taken; UserError (one line) when it no longer composes."""
    from cvlab.config.train import RENAMED_KEYS

    data = dict(data)
    for old, new in RENAMED_KEYS.items():
        if old in data:
            data[new] = data.pop(old)
    try:
        return train_config(data)
    except (ConfigError, ValueError, OmegaConfBaseException) as err:
        raise UserError(f"{run_dir / CONFIG_NAME} no longer composes: {err}") from None


@functools.cache
def _defaults() -> dict[str, Any]:
    """Each section's default values, to tell what a config sets."""
    return {"optimizer": OptimizerConfig(), "device": DeviceConfig(),
            "dataset": DatasetConfig(), "": TrainConfig(model=None)}


def check_train(cfg: TrainConfig) -> None:
    """Refuse what `cfg` sets that its model family or dataset would ignore, a dataset the
    family does not train on, a baseline run of a model without normalization, a batch larger
    than the training set, and what the family's own rules refuse (its `check`)."""
    spec = _spec_of(cfg.model)
    family = spec.family
    family.check(cfg)
    defaults = _defaults()
    for key in family.unused_fields:
        value, default = _value(cfg, defaults, key)
        if value != default:
            raise ConfigError(key, value, f"{family.words} (model.type={spec.name}) do not use "
                              f"it; leave it at {default!r}")
    if cfg.dataset.name != AUTO and cfg.dataset.name not in family.datasets:
        allowed = ", ".join((AUTO, *family.datasets)) if family.datasets else "none"
        raise ConfigError("dataset.name", cfg.dataset.name, f"{family.words} (model.type="
                          f"{spec.name}) train on {allowed}")
    used = DATASET_FIELDS[cfg.dataset.name]
    for item in dataclasses.fields(DatasetConfig):
        value, default = getattr(cfg.dataset, item.name), getattr(defaults["dataset"], item.name)
        if item.name not in used and value != default:
            raise ConfigError(f"dataset.{item.name}", value, f"dataset={cfg.dataset.name} does "
                              f"not use it; it applies to {_datasets_using(item.name)}")
    if cfg.baseline and spec.baseline_model(cfg.model) is None:
        raise ConfigError("baseline", True, f"model.type={spec.name} has no normalization to "
                          "drop; use a normalized model (model=bn_fc or model=ln_fc)")
    _check_batch_fits(cfg, family.datasets)


def _check_batch_fits(cfg: TrainConfig, datasets: tuple[str, ...]) -> None:
    """A batch no larger than the training set, for families that train on an image set
    (whose training set is exactly dataset.num_train images; a captioning set's size is known
    only once it is loaded). A larger one would not be what it says: the torch trainer's
    batches would hold the whole set, and the course's Solver would draw every image of
    each batch several times over (it samples with replacement)."""
    if datasets and set(datasets) <= set(IMAGE_DATASETS) \
            and cfg.batch_size > cfg.dataset.num_train:
        raise ConfigError("batch_size", cfg.batch_size, "at most the training set's "
                          f"dataset.num_train={cfg.dataset.num_train} images; lower batch_size "
                          "or raise dataset.num_train")


def _spec_of(model: ModelConfig) -> ModelSpec:
    """The spec of the model config; its `type` must be the one of the schema it came from."""
    try:
        spec = spec_for(model.type)
    except ValueError:
        spec = None
    if spec is None or not isinstance(model, spec.schema):
        raise ConfigError("model.type", model.type, "the type of the model option chosen; pick "
                          f"the model with model=<option> (types: {', '.join(model_types())})")
    return spec


def _value(cfg: TrainConfig, defaults: dict[str, Any], key: str) -> tuple[Any, Any]:
    section, _, name = key.rpartition(".")
    owner = getattr(cfg, section) if section else cfg
    return getattr(owner, name), getattr(defaults[section], name)


def _datasets_using(name: str) -> str:
    return ", ".join(f"dataset={d}" for d, fields in DATASET_FIELDS.items() if name in fields)
