"""Model types that train a student's own classes: `model=impl_fc` (and impl_bn_fc, impl_ln_fc,
impl_dropout_fc) builds their FullyConnectedNet, `model=impl_cnn` their ThreeLayerConvNet,
`model=impl_caption_rnn|impl_caption_lstm` their CaptioningRNN, from `model.impl=<folder>` (the
folder holding cs231n/, cvlab.impl.course), with the course's signature and every other field
as model=fc / cnn / caption_rnn. The course's Solver (the numpy family) or CaptioningSolver (the
captioning family, on the CPU as the course's solver runs it) then trains them like cvlab's
own; run folders record model.impl and model.impl_digest (which code trained them).

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
from cvlab.families import Announce, Build, Prepared
from cvlab.families.captioning import CaptioningFamily
from cvlab.families.numpy import NumpyFamily
from cvlab.impl.course import COURSE, call_student, find_layout, load_class
from cvlab.models.captioning import CaptioningConfig
from cvlab.models.cnn import ThreeLayerConvNetConfig
from cvlab.models.fc_net import FullyConnectedNetConfig, without_normalization
from cvlab.models.registry import ModelSpec, register
from cvlab.validation import ConfigError

CLASS_OF = {"impl_fc_net": "FullyConnectedNet", "impl_cnn": "ThreeLayerConvNet",
            "impl_captioning": "CaptioningRNN"}


@dataclass
class ImplConfig(ModelConfig):
    """The fields of every model type that trains a student's class."""

    impl: str = ""  # your folder (required)
    impl_digest: str = ""  # a digest of your code (recorded by cvlab reproduce impl=)


def check_folder(model: ModelConfig) -> None:
    """The student's folder and the file of the class `model` trains are there (nothing of
    theirs is imported); UserError (one line) otherwise."""
    folder = model.impl if isinstance(model, ImplConfig) else ""
    if not folder:
        raise UserError(f"model.type={model.type} trains your own class: set model.impl="
                        "<the folder that holds your cs231n/ package>")
    layout = find_layout(folder)
    module = layout.module_of(CLASS_OF[model.type])
    if not layout.file_of(module).is_file():
        raise UserError(f"model.impl={folder}: {layout.display(module)} is not there "
                        f"(model.type={model.type} trains its {CLASS_OF[model.type]})")


class ImplNumpyFamily(NumpyFamily):
    """The numpy family, whose preflight also finds the student's folder and class file."""

    def preflight(self, cfg: TrainConfig, model: ModelConfig) -> None:
        super().preflight(cfg, model)
        check_folder(model)


class ImplCaptioningFamily(CaptioningFamily):
    """The captioning family on the CPU (the course's CaptioningRNN makes its tensors there),
    whose preflight also finds the student's folder and class file."""

    def check(self, cfg: TrainConfig) -> None:
        super().check(cfg)
        if cfg.device.name not in ("auto", "cpu"):
            raise ConfigError("device.name", cfg.device.name, f"model.type={cfg.model.type} "
                              "trains your CaptioningRNN on the CPU, as the course's solver "
                              "does; use device.name=cpu (or auto)")

    def preflight(self, cfg: TrainConfig, model: ModelConfig) -> None:
        check_folder(model)

    def prepare(self, cfg: TrainConfig, model: ModelConfig, build: Build,
                announce: Announce) -> Prepared:
        on_cpu = replace(cfg, device=replace(cfg.device, name="cpu"))
        return super().prepare(on_cpu, model, build, announce)


IMPL_NUMPY = ImplNumpyFamily()
IMPL_CAPTIONING = ImplCaptioningFamily()


@dataclass
class ImplFullyConnectedNetConfig(FullyConnectedNetConfig, ImplConfig):
    """`model=impl_fc|impl_bn_fc|impl_ln_fc|impl_dropout_fc`: your FullyConnectedNet (impl:
    the folder holding cs231n/, or a layers.py defining it), the fields of model=fc."""

    type: str = "impl_fc_net"


@dataclass
class ImplThreeLayerConvNetConfig(ThreeLayerConvNetConfig, ImplConfig):
    """`model=impl_cnn`: your ThreeLayerConvNet (impl: your folder), the fields of model=cnn."""

    type: str = "impl_cnn"


@dataclass
class ImplCaptioningConfig(CaptioningConfig, ImplConfig):
    """`model=impl_caption_rnn|impl_caption_lstm`: your CaptioningRNN (impl: your folder), the
    fields of model=caption_rnn."""

    type: str = "impl_captioning"


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
    return _declare_buffers(call_student(
        "building your FullyConnectedNet", cls,
        list(cfg.hidden_dims), input_dim=int(np.prod(input_shape)), num_classes=num_classes,
        dropout_keep_ratio=cfg.dropout_keep_ratio,
        normalization=None if cfg.normalization == "none" else cfg.normalization,
        reg=cfg.reg, weight_scale=cfg.weight_scale, dtype=np.dtype(cfg.dtype).type))


def build_cnn(cfg: ImplThreeLayerConvNetConfig, input_shape: tuple[int, ...], num_classes: int,
              rng: Any) -> Any:
    """Your ThreeLayerConvNet for inputs of `input_shape` (C, H, W), the course's arguments."""
    cls = load_class(cfg.impl, "ThreeLayerConvNet")
    return _declare_buffers(call_student(
        "building your ThreeLayerConvNet", cls, input_dim=tuple(input_shape),
        num_filters=cfg.num_filters, filter_size=cfg.filter_size, hidden_dim=cfg.hidden_dim,
        num_classes=num_classes, weight_scale=cfg.weight_scale, reg=cfg.reg,
        dtype=np.dtype(cfg.dtype).type))


class YourCaptioner:
    """cvlab's CaptioningSolver's model (CaptionModel) over a student's CaptioningRNN: the
    minibatches go in as torch tensors (features in the model's dtype, captions as int64), as
    the course's CaptioningSolverPytorch hands them; sampled word ids (N, T) come back as a
    numpy array; a checkpoint's params are copied into theirs in place."""

    def __init__(self, net: Any, dtype: Any) -> None:
        import torch

        params = getattr(net, "params", None)
        if not isinstance(params, dict) or not params or not all(
                isinstance(value, torch.Tensor) and value.requires_grad
                for value in params.values()):
            raise UserError("your CaptioningRNN: self.params must be a dict of torch tensors "
                            "with requires_grad (the course's W_proj, b_proj, W_embed, Wx, Wh, "
                            "b, W_vocab, b_vocab)")
        self.net, self.params, self.dtype = net, params, dtype

    def loss(self, features: np.ndarray, captions: np.ndarray) -> Any:
        import torch

        loss = self.net.loss(torch.as_tensor(features, dtype=self.dtype),
                             torch.as_tensor(captions, dtype=torch.long))
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise UserError("your CaptioningRNN.loss must return the loss as a one-element "
                            f"torch tensor; it returned {type(loss).__name__}")
        return loss.reshape(())

    def sample(self, features: np.ndarray, max_length: int = 30) -> np.ndarray:
        import torch

        with torch.no_grad():
            ids = self.net.sample(torch.as_tensor(features, dtype=self.dtype),
                                  max_length=max_length)
        ids = ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
        return ids.astype(np.int64)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        import torch

        if set(state) != set(self.params):
            raise ValueError(f"the checkpoint holds params {sorted(state)}, your CaptioningRNN "
                             f"{sorted(self.params)}")
        with torch.no_grad():
            for name, value in state.items():
                self.params[name].copy_(value)


def build_captioner(cfg: ImplCaptioningConfig, word_to_idx: dict[str, int], input_dim: int,
                    seed: int, device: Any) -> YourCaptioner:
    """Your CaptioningRNN for `input_dim`-d features, called with the course's arguments; its
    weights come from torch's global RNG, seeded with `seed` first (as the notebook seeds it).
    It stays on the CPU (the family's device)."""
    import torch

    cls = load_class(cfg.impl, "CaptioningRNN")
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    torch.manual_seed(seed)
    np.random.seed(seed)
    net = call_student("building your CaptioningRNN", cls, word_to_idx, input_dim=input_dim,
                       wordvec_dim=cfg.wordvec_dim, hidden_dim=cfg.hidden_dim,
                       cell_type=cfg.cell_type, dtype=dtype)
    return YourCaptioner(net, dtype)


assert set(CLASS_OF.values()) <= set(COURSE)
FC_SPEC = register(ModelSpec(name="impl_fc_net", family=IMPL_NUMPY,
                             schema=ImplFullyConnectedNetConfig, build=build_fc,
                             without_normalization=without_normalization))
CNN_SPEC = register(ModelSpec(name="impl_cnn", family=IMPL_NUMPY,
                              schema=ImplThreeLayerConvNetConfig, build=build_cnn,
                              plot_hooks=("filters",)))
CAPTION_SPEC = register(ModelSpec(name="impl_captioning", family=IMPL_CAPTIONING,
                                  schema=ImplCaptioningConfig, build=build_captioner))
