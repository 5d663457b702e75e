"""`cvlab train` for the numpy models: data, model, Solver, and the run folder's records.

run(cfg, run_dir) writes into run_dir:
    metrics.csv     iteration, epoch, loss, train_acc, val_acc, lr, elapsed_s (one row per update;
                    train_acc / val_acc filled at the checks: first iteration and epoch ends)
    summary.json    status (completed | diverged | ...), dataset, wall_time_s and `metrics`:
                    the final numbers plus the settings the plots group by (weight_scale,
                    normalization, batch_size, keep_ratio, ...)
    checkpoint.pkl  the full training state at the last epoch end (resume=<this folder>)
    params.npz      the model's final (best-validation) parameters
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.config.numpy_models import (
    ConvDemoConfig,
    FullyConnectedNetConfig,
    ThreeLayerConvNetConfig,
)
from cvlab.config.train import TrainConfig
from cvlab.errors import UserError
from cvlab.runs import MetricsLogger, write_summary
from cvlab.train import checkpoint as ckpt
from cvlab.train.solver import METRIC_COLUMNS, Solver

log = logging.getLogger(__name__)

# Decoded datasets kept per process: the jobs of a parallel sweep run in a few reused
# worker processes, so each worker loads the data once.
_DATA_CACHE: dict[str, tuple[Any, dict[str, np.ndarray]]] = {}


def load_data(dataset_cfg: Any, dtype: str) -> tuple[Any, dict[str, np.ndarray]]:
    """(splits, course data dict) for a dataset config, memoized per process."""
    from cvlab.data import load_splits, preprocess

    key = f"{dataset_cfg!r}/{dtype}"
    if key not in _DATA_CACHE:
        splits = load_splits(dataset_cfg)
        data = preprocess(splits, subtract_mean=dataset_cfg.subtract_mean, dtype=dtype)
        _DATA_CACHE.clear()  # keep one dataset at a time
        _DATA_CACHE[key] = (splits, data)
    return _DATA_CACHE[key]


def normalization_of(model_cfg: Any, baseline: bool) -> str:
    """The normalization a run actually uses ("none" for the baseline runs of a sweep)."""
    if not isinstance(model_cfg, FullyConnectedNetConfig):
        return "none"
    return "none" if baseline else model_cfg.normalization


def build_model(model_cfg: Any, baseline: bool, rng: Any,
                input_dim: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> Any:
    """The numpy model a config describes, its weights drawn from `rng`."""
    from cvlab.models.cnn import ThreeLayerConvNet
    from cvlab.models.fc_net import FullyConnectedNet

    dtype = np.dtype(model_cfg.dtype).type
    if isinstance(model_cfg, FullyConnectedNetConfig):
        return FullyConnectedNet(
            list(model_cfg.hidden_dims),
            input_dim=int(np.prod(input_dim)),
            num_classes=num_classes,
            dropout_keep_ratio=model_cfg.dropout_keep_ratio,
            normalization=normalization_of(model_cfg, baseline),
            reg=model_cfg.reg,
            weight_scale=model_cfg.weight_scale,
            dtype=dtype,
            rng=rng,
        )
    if isinstance(model_cfg, ThreeLayerConvNetConfig):
        return ThreeLayerConvNet(
            input_dim=input_dim,
            num_filters=model_cfg.num_filters,
            filter_size=model_cfg.filter_size,
            hidden_dim=model_cfg.hidden_dim,
            num_classes=num_classes,
            weight_scale=model_cfg.weight_scale,
            reg=model_cfg.reg,
            dtype=dtype,
            rng=rng,
        )
    raise UserError(f"model.type={getattr(model_cfg, 'type', model_cfg)!r} is not a numpy model")


def optim_config_of(optimizer_cfg: Any) -> dict[str, float]:
    """The update rule's hyperparameters from the optimizer section."""
    from cvlab.train.optim import HYPERPARAMETERS, UPDATE_RULES

    if optimizer_cfg.name not in UPDATE_RULES:
        raise UserError(f"optimizer={optimizer_cfg.name!r} is not available for numpy models: "
                        f"use one of {', '.join(UPDATE_RULES)}")
    return {key: getattr(optimizer_cfg, key) for key in HYPERPARAMETERS[optimizer_cfg.name]}


def thread_limit(threads: int | None) -> Any:
    """Limit BLAS threads to `threads` (None: keep the process's setting)."""
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def blas_threads() -> int | None:
    """Threads the BLAS library currently uses (for the records)."""
    try:
        from threadpoolctl import threadpool_info

        counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
        return max(counts) if counts else None
    except Exception:  # noqa: BLE001 - informational only
        return None


def settings_of(cfg: TrainConfig) -> dict[str, Any]:
    """The settings plots and sweep tables group by, recorded with the final metrics."""
    model = cfg.model
    settings: dict[str, Any] = {
        "model_type": model.type,
        "experiment": cfg.experiment,
        "baseline": cfg.baseline,
        "normalization": normalization_of(model, cfg.baseline),
        "weight_scale": model.weight_scale,
        "reg": model.reg,
        "dtype": model.dtype,
        "batch_size": cfg.batch_size,
        "epochs": cfg.epochs,
        "update_rule": cfg.optimizer.name,
        "learning_rate": cfg.optimizer.learning_rate,
        "lr_decay": cfg.optimizer.lr_decay,
        "seed": cfg.seed,
    }
    if isinstance(model, FullyConnectedNetConfig):
        settings["hidden_dims"] = "x".join(map(str, model.hidden_dims))
        settings["keep_ratio"] = model.dropout_keep_ratio
    else:
        settings.update(num_filters=model.num_filters, filter_size=model.filter_size,
                        hidden_dim=model.hidden_dim)
    return settings


def final_metrics(solver: Solver) -> dict[str, Any]:
    """Best / final accuracies and the mean training loss of the last 100 iterations."""
    losses = np.asarray(solver.loss_history, dtype=np.float64)
    finite = losses[np.isfinite(losses)]
    train_accs, val_accs = solver.train_acc_history, solver.val_acc_history
    return {
        "best_val_acc": max(val_accs) if val_accs else None,
        "best_train_acc": max(train_accs) if train_accs else None,
        "final_train_acc": train_accs[-1] if train_accs else None,
        "final_val_acc": val_accs[-1] if val_accs else None,
        "final_loss": float(losses[-1]) if len(losses) else None,
        "final_loss_mean_last100": float(np.mean(finite[-100:])) if len(finite) else None,
        "iterations": solver.iteration,
        "epochs_done": solver.epoch,
        "diverged": solver.diverged,
    }


def run(cfg: TrainConfig, run_dir: Path) -> int:
    """Train the numpy model of `cfg` (or run the conv demo); record everything in run_dir."""
    if isinstance(cfg.model, ConvDemoConfig):
        from cvlab.train.conv_demo import run_conv_demo

        return run_conv_demo(cfg, run_dir)

    run_dir = Path(run_dir)
    start = time.perf_counter()
    cpu_start = time.process_time()
    # The course's layers draw dropout masks from numpy's global RNG: seed it too, so that
    # seeded runs are reproducible; minibatches and weights use their own RandomState.
    np.random.seed(cfg.seed)
    rng = np.random.RandomState(cfg.seed)

    with thread_limit(cfg.device.threads):
        splits, data = load_data(cfg.dataset, cfg.model.dtype)
        log.debug("data: %s", splits.describe())
        input_dim = tuple(int(d) for d in data["X_train"].shape[1:])
        model = build_model(cfg.model, cfg.baseline, rng, input_dim, splits.num_classes)
        settings = settings_of(cfg)
        settings["num_train"] = int(data["X_train"].shape[0])
        write_summary(run_dir, status="running", dataset=splits.name,
                      dataset_source=splits.source, metrics=settings)

        def iteration_printer(line: str) -> None:
            (log.debug if cfg.progress else log.info)(line)

        solver = Solver(
            model, data,
            update_rule=cfg.optimizer.name,
            optim_config=optim_config_of(cfg.optimizer),
            lr_decay=cfg.optimizer.lr_decay,
            batch_size=cfg.batch_size,
            num_epochs=cfg.epochs,
            num_train_samples=cfg.num_train_samples,
            num_val_samples=cfg.num_val_samples,
            print_every=cfg.print_every,
            rng=rng,
            progress=cfg.progress,
            checkpoint_dir=run_dir if cfg.checkpoint else None,
            printer=log.info,
            iteration_printer=iteration_printer,
            description=f"train {cfg.experiment or cfg.model.type}",
        )
        resumed_from = None
        if cfg.resume:
            resumed_from = resume_solver(solver, Path(cfg.resume), run_dir)
        logger = MetricsLogger(run_dir, METRIC_COLUMNS,
                               truncate_after_iteration=solver.iteration if resumed_from else None)
        solver.logger = logger
        try:
            solver.train()
        finally:
            logger.close()

        metrics = {**settings, **final_metrics(solver)}
        train_seconds = solver.elapsed_s
        if train_seconds > 0:
            metrics["train_images_per_s"] = solver.iteration * cfg.batch_size / train_seconds
        if cfg.evaluate_test and not solver.diverged:
            with np.errstate(over="ignore", invalid="ignore"):
                metrics["test_acc"] = solver.check_accuracy(data["X_test"], data["y_test"])
        metrics["blas_threads"] = blas_threads()
        # CPU seconds of this process: far below wall_time_s means the job waited for a core.
        metrics["cpu_time_s"] = round(time.process_time() - cpu_start, 3)
        ckpt.save_params(run_dir / ckpt.PARAMS_NAME, model.params)

    status = "diverged" if solver.diverged else "completed"
    files = [name for name in ("metrics.csv", ckpt.PARAMS_NAME, ckpt.CHECKPOINT_NAME)
             if (run_dir / name).is_file()]
    write_summary(
        run_dir,
        status=status,
        dataset=splits.name,
        dataset_source=splits.source,
        wall_time_s=round(time.perf_counter() - start, 3),
        metrics=metrics,
        files=files,
        resumed_from=str(resumed_from) if resumed_from else None,
    )
    if solver.diverged:
        log.warning("run diverged at iteration %d (non-finite loss); logs kept in %s",
                    solver.iteration, run_dir)
    else:
        log.info("done: best val acc %.4f, final train acc %.4f (%s)",
                 metrics["best_val_acc"], metrics["final_train_acc"], run_dir)
    return 0


def resume_solver(solver: Solver, source: Path, run_dir: Path) -> Path:
    """Load the checkpoint of the run folder `source` into `solver`; continue its metrics."""
    source = source.expanduser()
    folder = source if source.is_dir() else source.parent
    try:
        solver.resume(source)
    except ValueError as err:
        raise UserError(f"resume={source} does not fit this run: {err}; resume with the "
                        "same model, data and batch_size overrides as the first run") from None
    old_metrics = folder / "metrics.csv"
    if old_metrics.is_file() and folder.resolve() != run_dir.resolve():
        shutil.copyfile(old_metrics, run_dir / "metrics.csv")
    log.info("resumed from %s at epoch %d (iteration %d)", folder, solver.epoch, solver.iteration)
    return folder

