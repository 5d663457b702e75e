"""`cvlab train` for the numpy models: data, model and the course's Solver, as one Task.

    prepared = prepare(cfg, spec, model_cfg)    # Prepared: the task, the dataset, ...

The Solver draws minibatches from RandomState(seed); the course's layers draw dropout masks
from numpy's global RNG, which is seeded too, so that a seeded run is reproducible.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from cvlab.errors import UserError
from cvlab.layers import threads as layer_threads
from cvlab.models.registry import ModelSpec
from cvlab.train.core import LoopResult
from cvlab.train.run import Prepared
from cvlab.train.solver import MODEL_BUFFERS, Solver, SolverTask

# Decoded datasets kept per process: the jobs of a parallel sweep run in a few reused
# worker processes, so each worker loads the data once.
_DATA_CACHE: dict[str, tuple[Any, dict[str, np.ndarray]]] = {}


def load_data(dataset_cfg: Any, dtype: str, announce: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """(splits, course data dict) for a dataset config, memoized per process."""
    from cvlab.data import load_splits, preprocess

    key = f"{dataset_cfg!r}/{dtype}"
    if key not in _DATA_CACHE:
        splits = load_splits(dataset_cfg, announce=announce)
        data = preprocess(splits, subtract_mean=dataset_cfg.subtract_mean, dtype=dtype)
        _DATA_CACHE.clear()  # keep one dataset at a time
        _DATA_CACHE[key] = (splits, data)
    return _DATA_CACHE[key]


def optim_config_of(optimizer_cfg: Any) -> dict[str, float]:
    """The update rule's hyperparameters from the optimizer section."""
    from cvlab.defaults import HYPERPARAMETERS
    from cvlab.train.optim import UPDATE_RULES

    if optimizer_cfg.name not in UPDATE_RULES:
        raise UserError(f"optimizer={optimizer_cfg.name!r} is not available for numpy models: "
                        f"use one of {', '.join(UPDATE_RULES)}")
    return {key: getattr(optimizer_cfg, key) for key in HYPERPARAMETERS[optimizer_cfg.name]}


class NumpyRunTask(SolverTask):
    """The Solver's task plus what a run folder records: final metrics, test accuracy and
    the weights."""

    def __init__(self, solver: Solver, data: dict[str, np.ndarray]) -> None:
        super().__init__(solver)
        self.data = data

    def final_metrics(self, result: LoopResult) -> dict[str, Any]:
        s = self.solver
        train_seconds = result.train_time_s
        last = result.last_metrics
        return {
            "best_val_acc": result.best.get("val_acc"),
            "best_train_acc": result.best.get("train_acc"),
            "final_val_acc": last.get("val_acc"),
            "final_train_acc": last.get("train_acc"),
            "iterations": s.iteration,
            "epochs": s.epoch,
            "train_time_s": round(train_seconds, 3),
            "images_per_s": (result.updates * s.batch_size / train_seconds
                             if train_seconds > 0 else None),
            "blas_threads": layer_threads.configured(),  # the layers' threads in the run
        }

    def evaluate_split(self, split: str) -> dict[str, float]:
        X, y = self.data[f"X_{split}"], self.data[f"y_{split}"]
        with np.errstate(over="ignore", invalid="ignore"):
            return {f"{split}_acc": self.solver.check_accuracy(X, y)}

    def finish(self, status: str) -> None:
        """Keep the last update's weights, then restore the best ones (the course's)."""
        self.last = self._weights()
        super().finish(status)

    def _weights(self) -> dict[str, Any]:
        """The model's params and the buffers test mode needs (batchnorm's statistics)."""
        model = self.solver.model
        buffers = {name: copy.deepcopy(getattr(model, name)) for name in MODEL_BUFFERS
                   if hasattr(model, name)}
        return {"params": {k: v.copy() for k, v in model.params.items()}, "buffers": buffers}

    def weights(self) -> dict[str, dict[str, Any]]:
        """model: the last update's weights; model_best: the best validation accuracy's (what
        the course's Solver restores, and test_acc uses)."""
        return {"model": getattr(self, "last", None) or self._weights(),
                "model_best": self._weights()}

    def load_weights(self, tree: dict[str, Any]) -> None:
        """Put saved weights (weights()["model"]) into the model; ValueError if they differ."""
        model = self.solver.model
        params = tree["params"]
        for name, value in model.params.items():
            if name not in params or params[name].shape != value.shape:
                raise ValueError(f"the saved weights have no {name} of shape {value.shape}")
        model.params = {name: np.array(params[name], dtype=value.dtype)
                        for name, value in model.params.items()}
        for name, value in tree.get("buffers", {}).items():
            setattr(model, name, value)

    def scale_learning_rate(self, factor: float) -> None:
        for config in self.solver.optim_configs.values():
            if "learning_rate" in config:
                config["learning_rate"] *= factor

    def write_extras(self, run_dir: Any) -> list[str]:
        return []


def prepare(cfg: Any, spec: ModelSpec, model_cfg: Any, announce: Any) -> Prepared:
    """The numpy run of `cfg`: its data, its model (`spec.build`) and a NumpyRunTask."""
    from cvlab.layers.fast import announce_fallback

    announce_fallback(announce)
    np.random.seed(cfg.seed)
    rng = np.random.RandomState(cfg.seed)
    # the images in the model's dtype where its schema has one, else numpy's default
    splits, data = load_data(cfg.dataset, getattr(model_cfg, "dtype", "float64"), announce)
    input_shape = tuple(int(d) for d in data["X_train"].shape[1:])
    model = spec.build(model_cfg, input_shape, splits.num_classes, rng)
    solver = Solver(
        model, data, update_rule=cfg.optimizer.name, optim_config=optim_config_of(cfg.optimizer),
        lr_decay=cfg.optimizer.lr_decay, batch_size=cfg.batch_size, num_epochs=cfg.epochs,
        num_train_samples=cfg.train_eval_samples, num_val_samples=cfg.val_eval_samples,
        print_every=cfg.print_every, rng=rng,
    )
    return Prepared(task=NumpyRunTask(solver, data), dataset=splits.name,
                    dataset_source=splits.source, device="cpu (numpy)",
                    settings={"num_train": int(data["X_train"].shape[0])},
                    context=layer_threads.use_threads(cfg.device.threads))
