"""The schemas in Hydra's ConfigStore: every YAML option in configs/ extends one of them.

    <command>_schema            the primary schema of a command (train.yaml lists train_schema
                                first in its defaults)
    model/<type>_schema         one per model type (cvlab.models.registry)
    dataset/dataset_schema, optimizer/optimizer_schema, device/device_schema,
    logger/logger_schema

Composition is then typed by Hydra: a misspelled key or a value of the wrong type fails while
composing; range checks run when the composition is turned into dataclasses
(cvlab.config.typed).
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from cvlab.config.commands import (
    BenchConfig,
    DataConfig,
    EvalConfig,
    GradcheckConfig,
    PlotConfig,
    ReproduceConfig,
    RunsConfig,
)
from cvlab.config.train import (
    DatasetConfig,
    DeviceConfig,
    LoggerConfig,
    OptimizerConfig,
    TrainConfig,
)

PRIMARY_SCHEMAS = {"train": TrainConfig, "gradcheck": GradcheckConfig, "plot": PlotConfig,
                   "eval": EvalConfig, "data": DataConfig, "bench": BenchConfig,
                   "runs": RunsConfig, "reproduce": ReproduceConfig}
GROUP_SCHEMAS = {"dataset": DatasetConfig, "optimizer": OptimizerConfig, "device": DeviceConfig,
                 "logger": LoggerConfig}
SCHEMA_SUFFIX = "_schema"

_stored: dict[str, type] = {}  # what each name in the ConfigStore holds


def _store(group: str | None, name: str, schema: type) -> None:
    """Store `schema` under `name`, once (again when the name now stands for another class: a
    model module that was loaded anew)."""
    if _stored.get(name) is not schema:
        ConfigStore.instance().store(group=group, name=name, node=schema)
        _stored[name] = schema


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore, each once; a model type registered after an
    earlier call (its module imported later) is stored by the next call."""
    from cvlab.models.registry import schemas

    for command, schema in PRIMARY_SCHEMAS.items():
        _store(None, command + SCHEMA_SUFFIX, schema)
    for group, schema in GROUP_SCHEMAS.items():
        _store(group, group + SCHEMA_SUFFIX, schema)
    for model_type, schema in schemas().items():
        _store("model", model_type + SCHEMA_SUFFIX, schema)
