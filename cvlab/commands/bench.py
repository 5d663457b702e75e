"""`cvlab bench layers|train`: speed benchmarks (medians of repeats, ratios side by side)."""

from __future__ import annotations

import importlib
from pathlib import Path

from cvlab.config.commands import BenchConfig

ACTIONS = {"layers": "cvlab.bench.layers", "train": "cvlab.bench.train"}


def main(cfg: BenchConfig, run_dir: Path, overrides: list[str] | None = None) -> int:
    return importlib.import_module(ACTIONS[cfg.action]).run(cfg, run_dir)
