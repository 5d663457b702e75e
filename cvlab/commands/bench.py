"""`cvlab bench layers|train`: speed benchmarks (medians of repeats, ratios side by side)."""

from __future__ import annotations

import importlib
from pathlib import Path

from cvlab.config.commands import BenchConfig
from cvlab.errors import NotAvailableYet

ACTIONS = {"layers": "cvlab.bench.layers", "train": "cvlab.bench.train"}


def main(cfg: BenchConfig, run_dir: Path) -> int:
    module_name = ACTIONS[cfg.action]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            raise NotAvailableYet(f"`cvlab bench {cfg.action}` is not available yet") from None
        raise
    return module.run(cfg, run_dir)
