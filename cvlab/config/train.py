"""Schemas of `cvlab train`: trainer fields at the top, sections model, dataset, optimizer,
device, logger. Every default lives here (or in the model's schema, cvlab.models, or in the
course's defaults, cvlab.defaults); the YAML options in configs/ extend these schemas and state
only what differs.

The `model` section is a ModelConfig: the schema its YAML option extends (each model type's
schema subclasses ModelConfig; cvlab.models.registry). Fields a family or a dataset does not use
are refused when set (cvlab.config.typed). These are plain dataclasses: the training code takes
them as they are, typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from omegaconf import MISSING

from cvlab.data.constants import DATASET_NAMES
from cvlab.defaults import SOLVER as SOLVER_DEFAULTS
from cvlab.defaults import UPDATE_RULES as RULE_DEFAULTS
from cvlab.validation import check, check_choice, check_positive, check_seed
from cvlab.vocab import AMP_MODES, DEVICES, OPTIMIZERS, SCHEDULES

TAG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TORCH_RULE_OF = {"adamw": "adam"}  # the numpy rule whose defaults a torch-only optimizer takes
# Former spellings of renamed fields: still accepted (with a notice) for one release.
RENAMED_KEYS = {"num_train_samples": "train_eval_samples",
                "num_val_samples": "val_eval_samples"}


@dataclass
class ModelConfig:
    """The model section: `type` names the model type (cvlab.models.registry); each type's
    schema extends this class with the model's own fields."""

    type: str = MISSING

    def image_files(self) -> list[str]:
        """The image files the model reads (checked before the run starts); none by default."""
        return []


@dataclass
class DatasetConfig:
    """Which data to train on and how to split and preprocess it."""

    name: str = "auto"
    root: str | None = None  # default: $CVLAB_DATA/<name>, else ~/.cache/cvlab/<name>
    download: bool = False  # fetch the official archive (md5-checked) when it is missing
    # image sets (cifar10, synthetic): the course's splits
    num_train: int = 49000  # first images of a fixed permutation of the training set
    num_val: int = 1000  # last images of that permutation
    num_test: int = 1000  # first images of a fixed permutation of the test set
    subtract_mean: bool = True  # numpy models: subtract the mean training image
    split_seed: int = 0  # seed of the fixed permutations
    # the synthetic set (dataset=synthetic, or auto without CIFAR-10)
    synthetic_train: int = 50000
    synthetic_test: int = 10000
    synthetic_seed: int = 0
    # captioning sets (coco, shapes_captions)
    max_train: int | None = None  # keep this many training captions (null: all)
    pca_features: bool = True  # the 512-d PCA'd image features (false: 4096-d)
    shapes_train: int = 4000  # shapes_captions: training images (2-3 captions each)
    shapes_val: int = 500  # shapes_captions: validation images (unseen scene combinations)
    shapes_seed: int = 0

    def __post_init__(self) -> None:
        check_choice("name", self.name, DATASET_NAMES)
        check(self.num_train > 0, "num_train", self.num_train, "an integer > 0")
        check(self.num_val >= 0, "num_val", self.num_val, "an integer >= 0")
        check(self.num_test >= 0, "num_test", self.num_test, "an integer >= 0")
        check_seed("split_seed", self.split_seed)
        check(self.synthetic_train > 0, "synthetic_train", self.synthetic_train, "an integer > 0")
        check(self.synthetic_test >= 0, "synthetic_test", self.synthetic_test, "an integer >= 0")
        check_seed("synthetic_seed", self.synthetic_seed)
        check_positive("max_train", self.max_train, allow_none=True)
        check(self.shapes_train > 0, "shapes_train", self.shapes_train, "an integer > 0")
        check(self.shapes_val > 0, "shapes_val", self.shapes_val, "an integer > 0")
        check_seed("shapes_seed", self.shapes_seed)


@dataclass
class OptimizerConfig:
    """Update rule and its hyperparameters (numpy rules and torch.optim share the names).

    numpy models: sgd, sgd_momentum, rmsprop, adam with learning_rate, lr_decay (per epoch),
    momentum, decay_rate, beta1, beta2, epsilon. PyTorch models also: adamw, nesterov,
    weight_decay, label_smoothing, grad_clip and the schedules (none | step | warmup_linear |
    onecycle: warmup over warmup_frac of the steps from warmup_start x learning_rate, then
    down to final_factor x learning_rate at the last step; step: x lr_decay every step_epochs
    epochs). The captioner: the torch optimizers with lr_decay, weight_decay and grad_clip.
    """

    name: str = "adam"
    learning_rate: float | None = None  # null: the rule's course default (adam 1e-3, sgd 1e-2)
    lr_decay: float = SOLVER_DEFAULTS["lr_decay"]  # multiplied in at each epoch end
    momentum: float = RULE_DEFAULTS["sgd_momentum"]["momentum"]
    nesterov: bool = False
    decay_rate: float = RULE_DEFAULTS["rmsprop"]["decay_rate"]
    beta1: float = RULE_DEFAULTS["adam"]["beta1"]
    beta2: float = RULE_DEFAULTS["adam"]["beta2"]
    epsilon: float = RULE_DEFAULTS["adam"]["epsilon"]
    weight_decay: float = 0.0
    schedule: str = "none"
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    warmup_frac: float = 0.0
    warmup_start: float = 0.2
    final_factor: float = 0.0
    step_epochs: int = 1

    def __post_init__(self) -> None:
        check_choice("name", self.name, OPTIMIZERS)
        if self.learning_rate is None:
            self.learning_rate = RULE_DEFAULTS[TORCH_RULE_OF.get(self.name, self.name)][
                "learning_rate"]
        check_positive("learning_rate", self.learning_rate)
        check(0 < self.lr_decay <= 1, "lr_decay", self.lr_decay, "a number in (0, 1]")
        check(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        check(0 <= self.beta1 < 1, "beta1", self.beta1, "a number in [0, 1)")
        check(0 <= self.beta2 < 1, "beta2", self.beta2, "a number in [0, 1)")
        check(0 <= self.decay_rate < 1, "decay_rate", self.decay_rate, "a number in [0, 1)")
        check_positive("epsilon", self.epsilon)
        check(0 <= self.weight_decay < float("inf"), "weight_decay", self.weight_decay,
              "a finite number >= 0")
        check_choice("schedule", self.schedule, SCHEDULES)
        check(0 <= self.label_smoothing < 1, "label_smoothing", self.label_smoothing,
              "a number in [0, 1)")
        check_positive("grad_clip", self.grad_clip, allow_none=True)
        check(0 <= self.warmup_frac < 1, "warmup_frac", self.warmup_frac, "a number in [0, 1)")
        check(0 < self.warmup_start <= 1, "warmup_start", self.warmup_start, "a number in (0, 1]")
        check(0 <= self.final_factor <= 1, "final_factor", self.final_factor, "a number in [0, 1]")
        check(self.step_epochs > 0, "step_epochs", self.step_epochs, "an integer > 0")


@dataclass
class DeviceConfig:
    """Where PyTorch models run (numpy models use `threads` only): auto | cpu | cuda | mps;
    threads: BLAS / torch CPU threads (null: the library's default); amp: mixed precision
    none | bf16 | fp16 (CUDA; bf16 also on CPUs with native bf16); deterministic: PyTorch's
    deterministic algorithms only (the same results on every run on one GPU, at some speed)."""

    name: str = "auto"
    threads: int | None = None
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False

    def __post_init__(self) -> None:
        check_choice("name", self.name, DEVICES)
        check_choice("amp", self.amp, AMP_MODES)
        check(self.threads is None or self.threads > 0, "threads", self.threads,
              "an integer > 0, or null")


@dataclass
class LoggerConfig:
    """Where a run's metrics go besides metrics.csv, which is always written (plot, eval and
    resume read it): tensorboard writes TensorBoard event files into <run folder>/<log_dir>."""

    tensorboard: bool = False
    log_dir: str = "tensorboard"

    def __post_init__(self) -> None:
        check(bool(self.log_dir) and not self.log_dir.startswith(("/", "..")), "log_dir",
              self.log_dir, "a folder name inside the run folder")


@dataclass
class TrainConfig:
    """Everything one `cvlab train` run needs.

    train_eval_samples / val_eval_samples: how many training / validation images each
    evaluation scores (a fixed random subset; null: all). objective: the summary metric a
    Hydra sweeper optimizes (the value the run returns to it).
    """

    model: ModelConfig = MISSING
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    experiment: str | None = None  # name of the experiment overlay, for records and plots
    tags: list[str] = field(default_factory=list)  # labels of the run, for `cvlab runs`
    seed: int = 0
    epochs: int = SOLVER_DEFAULTS["num_epochs"]
    batch_size: int = SOLVER_DEFAULTS["batch_size"]
    print_every: int = SOLVER_DEFAULTS["print_every"]
    train_eval_samples: int | None = SOLVER_DEFAULTS["num_train_samples"]
    val_eval_samples: int | None = SOLVER_DEFAULTS["num_val_samples"]
    evaluate_test: bool = False
    baseline: bool = False  # drop the model's normalization (the sweeps' baseline runs)
    resume: str | None = None  # a run or sweep folder to continue, or `latest`
    resume_changed: bool = False  # continue a sweep whose configs changed since it was planned
    checkpoint: bool = True
    progress: bool = True
    objective: str = "best_val_acc"
    outputs_root: str = "outputs"

    def __post_init__(self) -> None:
        from cvlab.records.summary import METRIC_KEYS

        check_seed("seed", self.seed)
        check(self.epochs > 0, "epochs", self.epochs, "an integer > 0")
        check(self.batch_size > 0, "batch_size", self.batch_size, "an integer > 0")
        check(self.print_every > 0, "print_every", self.print_every, "an integer > 0")
        check(all(TAG.match(tag) for tag in self.tags), "tags", self.tags,
              "a list of labels of letters, digits, _ . - (e.g. [baseline,seed_study])")
        for name in ("train_eval_samples", "val_eval_samples"):
            value = getattr(self, name)
            check(value is None or value > 0, name, value, "an integer > 0, or null (all)")
        check_choice("objective", self.objective, METRIC_KEYS)
        check(self.resume is None or self.resume.strip() != "", "resume", self.resume,
              "a run folder, latest, a sweep folder or latest_sweep (an empty value: a variable "
              "that is not set?)")
