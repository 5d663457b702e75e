"""The model registry: every model type says, next to its code, what cvlab needs to know.

    SPEC = register(ModelSpec(name="fc_net", family=NUMPY, schema=FullyConnectedNetConfig,
                              build=build))

A model type is one module in cvlab/models/ (its schema, its ModelSpec and, for numpy models,
its code) plus one YAML option in configs/model/. The modules here import no torch, so that
configs compose and numpy runs start without it; the PyTorch networks live in
cvlab/models/nets/ and are imported by their builders. `spec_for(type)` finds a type's spec,
`model_types()` lists them; the config layer, the run core, eval and plot ask the spec for the
model's family (a cvlab.families object) instead of guessing it from a name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cvlab.config.train import ModelConfig
from cvlab.families import Family


@dataclass(frozen=True)
class ModelSpec:
    """What cvlab knows about one model type.

    name        the config's `model.type`
    family      the cvlab.families object that trains it (NUMPY, TORCH, CAPTIONING, DEMO)
    schema      the config dataclass, a ModelConfig (its fields and defaults are the model's
                options)
    build       the builder; its arguments are the family's (cvlab.families): numpy
                build(cfg, input_shape, num_classes, rng) -> a model with `params`, `buffers`
                and `loss(X, y=None)` (cvlab.train.solver.Model), fed images in its params'
                dtype; torch build(cfg, input_shape, num_classes, seed) -> an nn.Module
    plot_hooks  extra figures `cvlab plot` draws from the run's weights: "filters"
    without_normalization  the schema instance without its normalization (the sweeps'
                `baseline=true` runs); None when the model has no normalization to drop
    """

    name: str
    family: Family
    schema: type[ModelConfig]
    build: Callable[..., Any]
    plot_hooks: tuple[str, ...] = ()
    without_normalization: Callable[[ModelConfig], ModelConfig] | None = None

    def baseline_model(self, model: ModelConfig) -> ModelConfig | None:
        """`model` without its normalization (a sweep's baseline), or None when it has none."""
        return None if self.without_normalization is None else self.without_normalization(model)

    def __post_init__(self) -> None:
        if not issubclass(self.schema, ModelConfig):
            raise TypeError(f"model type {self.name!r}: its schema {self.schema.__name__} must "
                            "subclass cvlab.config.train.ModelConfig")


_SPECS: dict[str, ModelSpec] = {}
_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    """Add `spec` to the registry (a module calls this at import); returns it."""
    existing = _SPECS.get(spec.name)
    if existing is not None and existing.build is not spec.build:
        raise ValueError(f"model type {spec.name!r} is registered twice")
    _SPECS[spec.name] = spec
    return spec


def _load() -> None:
    """Import every model module of this package (they register themselves)."""
    global _loaded
    if _loaded:
        return
    import cvlab.models

    for module in pkgutil.iter_modules(cvlab.models.__path__):
        if not module.ispkg and not module.name.startswith("_") and module.name != "registry":
            importlib.import_module(f"cvlab.models.{module.name}")
    _loaded = True


def model_types() -> list[str]:
    """The registered model types, sorted."""
    _load()
    return sorted(_SPECS)


def spec_for(model_type: str) -> ModelSpec:
    """The spec of `model_type`; ValueError listing the valid types."""
    _load()
    if model_type not in _SPECS:
        raise ValueError(f"unknown model type {model_type!r}; valid types: "
                         f"{', '.join(model_types())}")
    return _SPECS[model_type]


def schemas() -> dict[str, type[ModelConfig]]:
    """Model type -> schema dataclass, for every registered type."""
    _load()
    return {name: spec.schema for name, spec in sorted(_SPECS.items())}
