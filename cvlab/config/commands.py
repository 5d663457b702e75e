"""Schemas of the commands other than train (gradcheck, plot, data, bench)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cvlab.config.train import DatasetConfig, DeviceConfig
from cvlab.impl.course import implementation_problem
from cvlab.validation import check, check_choice, check_positive, check_seed
from cvlab.vocab import DEVICES, EVAL_SPLITS, WEIGHT_CHOICES

DATA_ACTIONS = ("info", "fetch")
BENCH_ACTIONS = ("layers", "train")
RUNS_FORMATS = ("table", "csv", "json")


@dataclass
class GradcheckConfig:
    layer: str = "all"  # a registered check, or all
    seed: int = 231
    impl: str | None = None  # your folder (holding cs231n/, or a layers.py): check your code
    seeds: int = 3  # impl=: each gradient check runs at seed, seed + 1, ...
    timeout_s: float = 120.0  # impl=: the time each check of your code may take
    memory_gb: float = 4.0  # impl=: address space your code may use (0: no limit)
    outputs_root: str = "outputs"

    def __post_init__(self) -> None:
        check_seed("seed", self.seed)
        check(self.seeds >= 1, "seeds", self.seeds, "an integer >= 1")
        check_implementation_options(self)


def check_implementation_options(cfg: GradcheckConfig | ReproduceConfig) -> None:
    """impl= names a student's folder in the course's layout; its limits are positive."""
    check_positive("timeout_s", cfg.timeout_s)
    check(math.isfinite(cfg.memory_gb) and cfg.memory_gb >= 0, "memory_gb", cfg.memory_gb,
          "a number of GiB >= 0 (0: no limit)")
    if cfg.impl is not None:
        problem = implementation_problem(cfg.impl)
        check(problem is None, "impl", cfg.impl, f"a folder that holds your cs231n/ package "
              f"(the assignment's folder) or a single layers.py; {problem}")


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


@dataclass
class RunsConfig:
    """`cvlab runs`: list, filter, sort, group or compare the runs under outputs_root.

    where, group_by, metrics and diff are lists (the command line takes `group_by=a,b` and
    `where='a:1 b:2'` as lists too); after the checks each item is one word (where's items
    are split at spaces into terms)."""

    where: list[str] = field(default_factory=list)  # terms that must all hold: key:value,
    # key:op:value (op: eq ne lt le gt ge)
    sort: str | None = None  # a key to order by, -key descending (default: newest first)
    limit: int | None = None  # show the first N rows (or groups)
    group_by: list[str] = field(default_factory=list)  # keys: mean, std and count per group
    metrics: list[str] = field(default_factory=list)  # what a group averages; in a listing,
    # more columns
    diff: list[str] = field(default_factory=list)  # two run folders: the keys that differ
    format: str = "table"  # table | csv | json
    outputs_root: str = "outputs"

    def __post_init__(self) -> None:
        check_choice("format", self.format, RUNS_FORMATS)
        check(self.limit is None or self.limit > 0, "limit", self.limit,
              "an integer > 0, or null")
        check(self.sort is None or self.sort.lstrip("-") != "", "sort", self.sort,
              "a key, or -key for descending (e.g. sort=-best_val_acc)")
        self.where = _words("where", self.where, " ")
        self.group_by = _words("group_by", self.group_by, ",")
        self.metrics = _words("metrics", self.metrics, ",")
        self.diff = _words("diff", self.diff, ",")
        check(len(self.diff) in (0, 2), "diff", self.diff,
              "two run folders, diff=[<run>,<run>]")
        check(not (self.diff and (self.where or self.group_by or self.sort or self.limit)),
              "diff", self.diff, "two run folders, on their own (without where, sort, "
              "group_by or limit)")


def _words(key: str, value: list[str], separator: str) -> list[str]:
    """The list's items split at `separator` (and spaces), as non-empty strings."""
    return [word for item in value for part in str(item).split(separator)
            for word in part.split()]


PROFILES = ("auto", "quick", "full")


@dataclass
class ReproduceConfig:
    """`cvlab reproduce`: the course's experiments run and every claim of its notebooks checked.

    part: the notebooks' parts to reproduce (all, layers, batchnorm, dropout, cnn, pytorch,
    captioning; `part=batchnorm` or `part=[batchnorm,dropout]`); profile: quick (the embedded
    synthetic sets at reduced sizes), full (the course's sizes on CIFAR-10) or auto (full where
    CIFAR-10 is found, else quick); the runs are launched on `launcher=` (the group of
    `cvlab train`; hydra.launcher.* settings go with it); device: where the PyTorch runs train
    (`device=cuda`, the group of `cvlab train`; auto: each config's) and the BLAS threads of
    every run (device.threads); rerun: start a new reproduction instead of continuing the last
    one of the profile; impl: a student's folder whose functions and models the items use
    (cvlab's where it has none), run in worker processes with timeout_s and memory_gb."""

    part: list[str] = field(default_factory=lambda: ["all"])
    profile: str = "auto"
    device: DeviceConfig = field(default_factory=DeviceConfig)
    rerun: bool = False
    impl: str | None = None  # your folder (holding cs231n/, or a layers.py): your code's items
    timeout_s: float = 600.0  # impl=: the time each item's measure of your code may take
    memory_gb: float = 4.0  # impl=: address space your code may use (0: no limit)
    outputs_root: str = "outputs"

    def __post_init__(self) -> None:
        check(len(self.part) > 0, "part", self.part, "one part or more, e.g. part=batchnorm")
        check_choice("profile", self.profile, PROFILES)
        check_implementation_options(self)

