"""`cvlab train`: dispatch to the trainer of the model's family (numpy, torch, captioning)."""

from __future__ import annotations

from pathlib import Path

from cvlab.config.train import TrainConfig
from cvlab.errors import NotAvailableYet

TRAINERS = {
    "numpy": "cvlab.train.run_numpy",
    "torch": "cvlab.train.run_torch",
    "captioning": "cvlab.train.run_captioning",
}


def main(cfg: TrainConfig, run_dir: Path) -> int:
    import importlib

    family = type(cfg.model).family
    try:
        module = importlib.import_module(TRAINERS[family])
    except ModuleNotFoundError as err:
        if err.name == TRAINERS[family]:
            raise NotAvailableYet(f"training {family} models is not available yet") from None
        raise
    return module.run(cfg, run_dir)
