"""`cvlab eval`: score a finished run's saved model again, on its validation or test split.

    result = evaluate(run_dir, split="test", weights="best")

The run's config.yaml (read and checked by cvlab.records.reader) rebuilds its data and model
through its family's `prepare`; the weights come from model_best.npz or model.npz. Everything
that can be checked from the folder is checked before any data or model is loaded: a folder
that is not a finished training run, a split the family has not, weights of another model.
Classification runs get their accuracy, captioning runs their BLEU scores and a few generated
captions. The result is written to the run folder as eval.json (eval_<split>_<weights>.json
keeps earlier ones apart).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cvlab.config.train import TrainConfig
from cvlab.config.typed import stored_train_config
from cvlab.errors import UserError
from cvlab.models.registry import spec_for
from cvlab.records.files import EVAL_NAME, MODEL_NAME, RecordError, atomic_write_text, to_json
from cvlab.records.folders import latest_run_with
from cvlab.records.reader import RunFolder
from cvlab.run.train import effective_model

log = logging.getLogger(__name__)

WEIGHT_CHOICE = {"best": "model_best", "last": "model"}


def evaluate(run_dir: Path, split: str, weights: str, device: str | None = None) -> dict:
    """Score the run in `run_dir`; UserError (one line) for a folder that is not a finished
    cvlab training run, nothing written."""
    folder = RunFolder(run_dir)
    cfg, summary = _run_config(folder, device)
    spec = spec_for(cfg.model.type)
    family = spec.family
    if not family.trains:
        raise UserError(f"run={run_dir} is a {spec.name} run: it has no model to evaluate")
    if split not in family.eval_splits:
        raise UserError(f"split={split}: {family.words} have no {split} split to score; "
                        f"use split={' or split='.join(family.eval_splits)}")
    name = _weights_name(folder, weights)
    tree = folder.weights(name)
    if tree["model_type"] != spec.name:
        raise UserError(f"{run_dir / name}.npz holds a {tree['model_type']!r} model, not the "
                        f"run's {spec.name!r}")
    task = family.prepare(cfg, effective_model(spec, cfg), spec.build, log.info).task
    try:
        task.load_weights(tree["weights"])
    except (ValueError, KeyError, RuntimeError) as err:
        raise UserError(f"{run_dir / name}.npz does not fit the run's model ({err})") from None
    metrics = task.evaluate_split(split)
    result: dict[str, Any] = {"run": str(run_dir), "split": split, "weights": f"{name}.npz",
                              "dataset": summary.dataset, "model_type": spec.name,
                              "metrics": metrics}
    samples = task.samples()
    if samples:
        result["samples"] = samples
    for file_name in (EVAL_NAME, f"eval_{split}_{weights}.json"):
        atomic_write_text(run_dir / file_name, to_json(result))
    return result


def _run_config(folder: RunFolder, device: str | None) -> tuple[TrainConfig, Any]:
    """The run's typed TrainConfig (its device replaced when asked) and its summary."""
    try:
        folder.check()  # every file of the folder, as resume and plot check it
        summary = folder.summary()
        data = folder.config()
    except RecordError as err:
        raise UserError(f"run={folder.path} cannot be evaluated: {err}") from None
    if summary is None or summary.command not in (None, "train"):
        raise UserError(f"run={folder.path} is not a cvlab training run (no summary.json and "
                        "config.yaml of `cvlab train`); pass a run folder or run=latest")
    data.update(resume=None, progress=False)
    if device is not None:
        data.setdefault("device", {})["name"] = device
    return stored_train_config(data, folder.path), summary


def _weights_name(folder: RunFolder, weights: str) -> str:
    name = WEIGHT_CHOICE[weights]
    if folder.has(f"{name}.npz"):
        return name
    if weights == "best" and folder.has(MODEL_NAME):
        log.info("this run kept no best-validation weights; evaluating its last ones (%s)",
                 MODEL_NAME)
        return "model"
    raise UserError(f"run={folder.path} has no {name}.npz: the run saves its weights when it "
                    "ends (a run that failed or was interrupted before has none)")


def latest_evaluable(outputs_root: Path) -> Path:
    """The newest train run (or sweep job) with saved weights."""
    found = latest_run_with(outputs_root, MODEL_NAME)
    if found is None:
        raise UserError(f"run=latest found no run with saved weights under "
                        f"{Path(outputs_root) / 'train'}; pass run=<run folder>")
    print(f"run=latest: {found}", flush=True)
    return found
