"""Schemas of the commands other than train (gradcheck, plot, data, bench)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cvlab.config.train import DatasetConfig
from cvlab.validation import check, check_choice, check_seed
from cvlab.vocab import DEVICES, EVAL_SPLITS, WEIGHT_CHOICES

DATA_ACTIONS = ("info", "fetch")
BENCH_ACTIONS = ("layers", "train")


@dataclass
class GradcheckConfig:
    layer: str = "all"  # a registered check, or all
    seed: int = 231
    outputs_root: str = "outputs"

    def __post_init__(self) -> None:
        check_seed("seed", self.seed)


@dataclass
class PlotConfig:
    run: str = "latest"  # a run or sweep folder, or `latest`
    outputs_root: str = "outputs"
    show_table: bool = True


@dataclass
class DataConfig:
    action: str = "info"  # info | fetch
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    outputs_root: str = "outputs"

    def __post_init__(self) -> None:
        check_choice("action", self.action, DATA_ACTIONS)


@dataclass
class EvalConfig:
    run: str = "latest"  # a training run folder, or `latest`
    split: str = "val"  # val | test (the test split only when asked)
    weights: str = "best"  # best (model_best.npz, else model.npz) | last (model.npz)
    device: str | None = None  # PyTorch models: auto | cpu | cuda | mps (null: the run's)
    outputs_root: str = "outputs"

    def __post_init__(self) -> None:
        check_choice("split", self.split, EVAL_SPLITS)
        check_choice("weights", self.weights, WEIGHT_CHOICES)
        if self.device is not None:
            check_choice("device", self.device, DEVICES)


@dataclass
class BenchConfig:
    action: str = "layers"  # layers | train
    repeats: int = 5
    warmup: int = 1
    threads: int | None = None
    quick: bool = False  # smaller shapes, for tests
    outputs_root: str = "outputs"

    def __post_init__(self) -> None:
        check_choice("action", self.action, BENCH_ACTIONS)
        check(self.repeats > 0, "repeats", self.repeats, "an integer > 0")
        check(self.warmup >= 0, "warmup", self.warmup, "an integer >= 0")
        check(self.threads is None or self.threads > 0, "threads", self.threads,
              "an integer > 0, or null")
