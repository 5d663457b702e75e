"""The model registry: every model type says, next to its code, what cvlab needs to know.

    SPEC = register(ModelSpec(name="fc_net", family="numpy", schema=FullyConnectedNetConfig,
                              build=build))

A model type is one module in cvlab/models/ (its schema, its ModelSpec and, for numpy models,
its code) plus one YAML option in configs/model/. The modules here import no torch, so that
configs compose and numpy runs start without it; the PyTorch networks live in
cvlab/models/nets/ and are imported by their builders. `spec_for(type)` finds a type's spec,
`model_types()` lists them; trainers, plot and eval look the spec up instead of guessing a
family from a name.

Families: numpy (trained by the course's Solver), torch (the PyTorch trainer), captioning
(the captioning solver), demo (no training: the conv demo).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FAMILIES = ("numpy", "torch", "captioning", "demo")


@dataclass(frozen=True)
class ModelSpec:
    """What cvlab knows about one model type.

    name        the config's `model.type`
    family      numpy | torch | captioning | demo: which trainer runs it
    schema      the config dataclass (its fields and defaults are the model's options)
    build       the builder; its arguments depend on the family (see cvlab.train); numpy:
                build(cfg, input_shape, num_classes, rng) -> an object with `params` and
                `loss(X, y=None)`, fed images in cfg.dtype (float64 without that field)
    plot_hooks  extra figures `cvlab plot` draws from the run's weights: "filters"
    without_normalization  the schema instance without its normalization (the sweeps'
                `baseline=true` runs); None when the model has no normalization to drop
    """

    name: str
    family: str
    schema: type
    build: Callable[..., Any]
    plot_hooks: tuple[str, ...] = ()
    without_normalization: Callable[[Any], Any] | None = None

    def baseline_model(self, model: Any) -> Any | None:
        """`model` without its normalization (a sweep's baseline), or None when it has none."""
        return None if self.without_normalization is None else self.without_normalization(model)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family {self.family!r} is not one of {', '.join(FAMILIES)}")


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


def schemas() -> dict[str, type]:
    """Model type -> schema dataclass, for every registered type."""
    _load()
    return {name: spec.schema for name, spec in sorted(_SPECS.items())}
