"""Schema of `cvlab train`: trainer fields at the top, sections model/dataset/optimizer/device.

The `model` section is typed by the schema of its `type`, which each model module registers
with its spec (cvlab.models.registry).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cvlab.config import build, check, check_choice, check_positive
from cvlab.data.constants import DATASET_NAMES

OPTIMIZERS = ("sgd", "sgd_momentum", "rmsprop", "adam", "adamw")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class DatasetConfig:
    """Which data to train on and how to split and preprocess it."""

    name: str = "auto"
    root: str | None = None  # default: $CVLAB_DATA/<name>, else ~/.cache/cvlab/<name>
    download: bool = False
    num_train: int = 49000
    num_val: int = 1000
    num_test: int = 1000
    subtract_mean: bool = True
    split_seed: int = 0  # seed of the fixed permutation that picks the validation images
    # synthetic set
    synthetic_train: int = 50000
    synthetic_test: int = 10000
    synthetic_seed: int = 0
    # captioning sets (coco, shapes_captions)
    max_train: int | None = None
    pca_features: bool = True
    shapes_train: int = 4000  # shapes_captions: training images (2-3 captions each)
    shapes_val: int = 500  # shapes_captions: validation images (unseen scene combinations)
    shapes_seed: int = 0

    def __post_init__(self) -> None:
        check_choice("name", self.name, DATASET_NAMES)
        check(self.num_train > 0, "num_train", self.num_train, "an integer > 0")
        check(self.num_val >= 0, "num_val", self.num_val, "an integer >= 0")
        check(self.num_test >= 0, "num_test", self.num_test, "an integer >= 0")
        check(self.synthetic_train > 0, "synthetic_train", self.synthetic_train, "an integer > 0")
        check(self.synthetic_test >= 0, "synthetic_test", self.synthetic_test, "an integer >= 0")
        check_positive("max_train", self.max_train, allow_none=True)
        check(self.shapes_train > 0, "shapes_train", self.shapes_train, "an integer > 0")
        check(self.shapes_val > 0, "shapes_val", self.shapes_val, "an integer > 0")


@dataclass
class OptimizerConfig:
    """Update rule and its hyperparameters (numpy rules and torch.optim share the names)."""

    name: str = "adam"
    learning_rate: float = 1e-3
    lr_decay: float = 1.0  # multiplied into the learning rate at each epoch end
    momentum: float = 0.9
    nesterov: bool = False
    decay_rate: float = 0.99
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "none"
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    # torch schedules (none | step | warmup_linear | onecycle): warmup over warmup_frac of the
    # steps from warmup_start x learning_rate, then down to final_factor x learning_rate at the
    # last step; step: x lr_decay every step_epochs epochs
    warmup_frac: float = 0.0
    warmup_start: float = 0.2
    final_factor: float = 0.0
    step_epochs: int = 1

    def __post_init__(self) -> None:
        check_choice("name", self.name, OPTIMIZERS)
        check_positive("learning_rate", self.learning_rate)
        check(0 < self.lr_decay <= 1, "lr_decay", self.lr_decay, "a number in (0, 1]")
        check(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        check(0 <= self.beta1 < 1, "beta1", self.beta1, "a number in [0, 1)")
        check(0 <= self.beta2 < 1, "beta2", self.beta2, "a number in [0, 1)")
        check(0 <= self.decay_rate < 1, "decay_rate", self.decay_rate, "a number in [0, 1)")
        check_positive("epsilon", self.epsilon)
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        check(
            0 <= self.label_smoothing < 1, "label_smoothing", self.label_smoothing,
            "a number in [0, 1)",
        )
        check_positive("grad_clip", self.grad_clip, allow_none=True)
        check(0 <= self.warmup_frac < 1, "warmup_frac", self.warmup_frac, "a number in [0, 1)")
        check(0 < self.warmup_start <= 1, "warmup_start", self.warmup_start, "a number in (0, 1]")
        check(0 <= self.final_factor <= 1, "final_factor", self.final_factor, "a number in [0, 1]")
        check_positive("step_epochs", self.step_epochs)


@dataclass
class DeviceConfig:
    """Where torch models run; numpy models use `threads` only."""

    name: str = "auto"
    threads: int | None = None  # BLAS / torch threads; None = library default
    amp: str = "none"  # none | bf16 | fp16 (CUDA; bf16 also on CPUs with native bf16)
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        check_choice("name", self.name, DEVICES)
        check_choice("amp", self.amp, ("none", "bf16", "fp16"))
        check_positive("threads", self.threads, allow_none=True)


@dataclass
class TrainConfig:
    """Everything one `cvlab train` run needs (validated, plain Python values); `model` is the
    schema instance of the chosen model type (cvlab.models.registry)."""

    model: Any = None
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    experiment: str | None = None  # name of the experiment overlay, for records and plots
    seed: int = 0
    epochs: int = 10
    batch_size: int = 100
    print_every: int = 10
    num_train_samples: int | None = 1000
    num_val_samples: int | None = None
    evaluate_test: bool = False
    baseline: bool = False  # drop the model's normalization (the sweeps' baseline runs)
    resume: str | None = None  # a run folder to continue
    checkpoint: bool = True
    progress: bool = True
    outputs_root: str = "outputs"

    def __post_init__(self) -> None:
        check(self.epochs > 0, "epochs", self.epochs, "an integer > 0")
        check(self.batch_size > 0, "batch_size", self.batch_size, "an integer > 0")
        check(self.print_every > 0, "print_every", self.print_every, "an integer > 0")
        check_positive("num_train_samples", self.num_train_samples, allow_none=True)
        check_positive("num_val_samples", self.num_val_samples, allow_none=True)


def validate_train(cfg: Any) -> TrainConfig:
    """Check a composed train config; return a TrainConfig with a typed `model`."""
    from omegaconf import DictConfig, OmegaConf

    from cvlab.models.registry import model_types, spec_for

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    cfg = dict(cfg)
    model = dict(cfg.pop("model", None) or {})
    check_choice("model.type", model.get("type"), model_types())
    typed_model = build(spec_for(model["type"]).schema, model, "model")
    train = build(TrainConfig, cfg)
    return dataclasses.replace(train, model=typed_model)
