"""`cvlab eval run=<run folder>|latest [split=val|test] [weights=best|last]`: score a saved
model again (cvlab.run.evaluate); writes eval.json into the run folder, creates no folder."""

from __future__ import annotations

import logging
from pathlib import Path

from cvlab.config.commands import EvalConfig
from cvlab.errors import UserError

log = logging.getLogger(__name__)


def main(cfg: EvalConfig, run_dir: Path, overrides: list[str] | None = None) -> int:
    from cvlab.run.evaluate import evaluate, latest_evaluable

    if cfg.run == "latest":
        target = latest_evaluable(Path(cfg.outputs_root))
    else:
        target = Path(cfg.run).expanduser().resolve()
        if not target.is_dir():
            raise UserError(f"run={cfg.run} is not a folder; pass a run folder or run=latest")
    result = evaluate(target, cfg.split, cfg.weights, cfg.device)
    numbers = ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items())
    for split, rows in result.get("samples", {}).items():
        for row in rows[:3]:
            log.info("%s image %s: %s (reference: %s)", split, row["image_index"],
                     row["generated"], row["references"][0])
    print(f"{result['model_type']} on {result['dataset']} {cfg.split} ({result['weights']}): "
          f"{numbers}; written to {target / 'eval.json'}", flush=True)
    return 0
