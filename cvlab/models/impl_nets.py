"""Model types that train a student's own classes: `model=impl_fc` (and impl_bn_fc, impl_ln_fc,
impl_dropout_fc) builds their FullyConnectedNet, `model=impl_cnn` their ThreeLayerConvNet,
from `model.impl=<folder>` (the folder holding cs231n/, cvlab.impl.course), with the course's
signature and every other field as model=fc / model=cnn. The course's Solver then trains them
like cvlab's own (the numpy family); run folders record model.impl and model.impl_digest (which
code trained them).

Their code runs in the process of the job that builds the model: `cvlab train model=impl_fc`
runs it in that command's process, a sweep in the launcher's workers (joblib, submitit), and
`cvlab reproduce impl=` launches its runs only that way (never in its own process). Before a
run starts, the family's preflight checks that the folder and the class's file are there
(nothing of theirs is imported for that).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cvlab.config.train import ModelConfig, TrainConfig
from cvlab.errors import UserError
from cvlab.families.numpy import NumpyFamily
from cvlab.impl.course import COURSE, find_layout, load_class
from cvlab.models.cnn import ThreeLayerConvNetConfig
from cvlab.models.fc_net import FullyConnectedNetConfig
from cvlab.models.registry import ModelSpec, register

CLASS_OF = {"impl_fc_net": "FullyConnectedNet", "impl_cnn": "ThreeLayerConvNet"}


class ImplNumpyFamily(NumpyFamily):
    """The numpy family, whose preflight also finds the student's folder and class file."""

    def preflight(self, cfg: TrainConfig, model: ModelConfig) -> None:
        super().preflight(cfg, model)
        folder = getattr(model, "impl", "")
        if not folder:
            raise UserError(f"model.type={model.type} trains your own class: set model.impl="
                            "<the folder that holds your cs231n/ package>")
        layout = find_layout(folder)
        module = layout.module_of(CLASS_OF[model.type])
        if not layout.file_of(module).is_file():
            raise UserError(f"model.impl={folder}: {layout.display(module)} is not there "
                            f"(model.type={model.type} trains its {CLASS_OF[model.type]})")


IMPL_NUMPY = ImplNumpyFamily()


@dataclass
class ImplFullyConnectedNetConfig(FullyConnectedNetConfig):
    """`model=impl_fc|impl_bn_fc|impl_ln_fc|impl_dropout_fc`: your FullyConnectedNet (impl:
    the folder holding cs231n/, or a layers.py defining it), the fields of model=fc."""

    type: str = "impl_fc_net"
    impl: str = ""  # your folder (required)
    impl_digest: str = ""  # a digest of your code (recorded by cvlab reproduce impl=)


@dataclass
class ImplThreeLayerConvNetConfig(ThreeLayerConvNetConfig):
    """`model=impl_cnn`: your ThreeLayerConvNet (impl: your folder), the fields of model=cnn."""

    type: str = "impl_cnn"
    impl: str = ""  # your folder (required)
    impl_digest: str = ""  # a digest of your code (recorded by cvlab reproduce impl=)


def _declare_buffers(net: Any) -> Any:
    """The course's classes do not name their state outside params: batchnorm's running
    statistics (bn_params) and dropout_param go into checkpoints as cvlab's do."""
    if not hasattr(net, "buffers"):
        net.buffers = tuple(name for name in ("bn_params", "dropout_param")
                            if hasattr(net, name))
    return net


def build_fc(cfg: ImplFullyConnectedNetConfig, input_shape: tuple[int, ...], num_classes: int,
             rng: Any) -> Any:
    """Your FullyConnectedNet for inputs of `input_shape` (C, H, W), called with the course's
    arguments; its weights come from numpy's global RNG (seeded by the run, as the notebooks
    seed it)."""
    cls = load_class(cfg.impl, "FullyConnectedNet")
    return _declare_buffers(cls(
        list(cfg.hidden_dims), input_dim=int(np.prod(input_shape)), num_classes=num_classes,
        dropout_keep_ratio=cfg.dropout_keep_ratio,
        normalization=None if cfg.normalization == "none" else cfg.normalization,
        reg=cfg.reg, weight_scale=cfg.weight_scale, dtype=np.dtype(cfg.dtype).type))


def build_cnn(cfg: ImplThreeLayerConvNetConfig, input_shape: tuple[int, ...], num_classes: int,
              rng: Any) -> Any:
    """Your ThreeLayerConvNet for inputs of `input_shape` (C, H, W), the course's arguments."""
    cls = load_class(cfg.impl, "ThreeLayerConvNet")
    return _declare_buffers(cls(
        input_dim=tuple(input_shape), num_filters=cfg.num_filters, filter_size=cfg.filter_size,
        hidden_dim=cfg.hidden_dim, num_classes=num_classes, weight_scale=cfg.weight_scale,
        reg=cfg.reg, dtype=np.dtype(cfg.dtype).type))


def _without_normalization(cfg: ImplFullyConnectedNetConfig) -> ImplFullyConnectedNetConfig | None:
    return replace(cfg, normalization="none") if cfg.normalization != "none" else None


assert set(CLASS_OF.values()) <= set(COURSE)
FC_SPEC = register(ModelSpec(name="impl_fc_net", family=IMPL_NUMPY,
                             schema=ImplFullyConnectedNetConfig, build=build_fc,
                             without_normalization=_without_normalization))
CNN_SPEC = register(ModelSpec(name="impl_cnn", family=IMPL_NUMPY,
                              schema=ImplThreeLayerConvNetConfig, build=build_cnn,
                              plot_hooks=("filters",)))
