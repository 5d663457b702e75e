"""`cvlab eval`: score a finished run's saved model again, on its validation or test split.

    result = evaluate(run_dir, split="test", weights="best")

The run's config.yaml (read safely) rebuilds its data and model through the family's own
`prepare` (cvlab.train.run); the weights come from model_best.npz or model.npz through the
safe state files (cvlab.train.state). Classification runs get their accuracy, captioning runs
their BLEU scores and a few generated captions. The result is also written to the run folder
as eval.json (eval_<split>_<weights>.json keeps earlier ones apart).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from cvlab.errors import UserError
from cvlab.records.files import atomic_write_text, to_json
from cvlab.records.summary import read_summary

log = logging.getLogger(__name__)

WEIGHT_FILES = {"best": "model_best.npz", "last": "model.npz"}


def evaluate(run_dir: Path, split: str, weights: str, device: str | None = None) -> dict:
    """Score the run in `run_dir`; UserError (one line) for a folder that is not a finished
    cvlab training run."""
    from cvlab.models.registry import spec_for
    from cvlab.train.run import FAMILY_MODULES, effective_model, load_weights

    cfg, summary = _run_config(run_dir, device)
    spec = spec_for(cfg.model.type)
    if spec.family not in FAMILY_MODULES:
        raise UserError(f"run={run_dir} is a {spec.name} run: it has no model to evaluate")
    path = _weights_path(run_dir, weights)
    tree = load_weights(path)
    if tree.get("model_type") != spec.name:
        raise UserError(f"{path} holds a {tree.get('model_type')!r} model, not the run's "
                        f"{spec.name!r}")
    family = importlib.import_module(FAMILY_MODULES[spec.family])
    task = family.prepare(cfg, spec, effective_model(spec, cfg), log.info).task
    try:
        task.load_weights(tree["weights"])
    except (ValueError, KeyError, RuntimeError) as err:
        raise UserError(f"{path} does not fit the run's model ({err})") from None
    metrics = task.evaluate_split(split)
    result = {"run": str(run_dir), "split": split, "weights": path.name,
              "dataset": summary.dataset, "model_type": spec.name, "metrics": metrics}
    if hasattr(task, "samples") and getattr(task, "generated", None):
        result["samples"] = task.samples()
    for name in ("eval.json", f"eval_{split}_{weights}.json"):
        atomic_write_text(run_dir / name, to_json(result))
    return result


def _run_config(run_dir: Path, device: str | None) -> tuple[Any, Any]:
    """The run's typed TrainConfig (its device replaced when asked) and its summary."""
    import yaml

    from cvlab.config.train import RENAMED_KEYS
    from cvlab.config.typed import train_config
    from cvlab.validation import ConfigError

    summary = read_summary(run_dir)
    config_path = run_dir / "config.yaml"
    if summary is None or summary.command not in (None, "train") or not config_path.is_file():
        raise UserError(f"run={run_dir} is not a cvlab training run (no summary.json and "
                        "config.yaml of `cvlab train`); pass a run folder or run=latest")
    try:
        data = yaml.safe_load(config_path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"cannot read {config_path} ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{config_path} is not a config")
    for old, new in RENAMED_KEYS.items():
        if old in data:
            data[new] = data.pop(old)
    data.update(resume=None, progress=False)
    if device is not None:
        data.setdefault("device", {})["name"] = device
    try:
        return train_config(data), summary
    except (ConfigError, ValueError) as err:
        raise UserError(f"{config_path} no longer composes: {err}") from None


def _weights_path(run_dir: Path, weights: str) -> Path:
    path = run_dir / WEIGHT_FILES[weights]
    if path.is_file():
        return path
    fallback = run_dir / WEIGHT_FILES["last"]
    if weights == "best" and fallback.is_file():
        log.info("this run kept no best-validation weights; evaluating its last ones (%s)",
                 fallback.name)
        return fallback
    raise UserError(f"run={run_dir} has no {path.name}: the run saves its weights when it ends "
                    "(a run that failed or was interrupted before has none)")


def latest_evaluable(outputs_root: Path) -> Path:
    """The newest train run (or sweep job) with saved weights."""
    from cvlab.records.folders import latest_run_with

    found = latest_run_with(outputs_root, WEIGHT_FILES["last"])
    if found is None:
        raise UserError(f"run=latest found no run with saved weights under "
                        f"{Path(outputs_root) / 'train'}; pass run=<run folder>")
    print(f"run=latest: {found}", flush=True)
    return found
