"""`cvlab train`: one run folder for any model type (cvlab.run.train)."""

from __future__ import annotations

from pathlib import Path

from cvlab.config.train import TrainConfig


def main(cfg: TrainConfig, run_dir: Path, overrides: list[str] | None = None) -> int:
    from cvlab.run.train import train

    summary = train(cfg, run_dir, overrides)
    return 0 if summary.status in ("completed", "diverged") else 1
