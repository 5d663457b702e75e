"""`cvlab train` in a run folder, whatever the model's family.

    summary = train(cfg, run_dir, overrides)      # a RunSummary, also in run_dir/summary.json

The model type's spec names its family; the family prepares the task (or, for a family that
does not train, produces its results at once); cvlab.train.core runs the loop and keeps the
records. Everything around the loop is done here, once for every family: the summary (status,
settings, final metrics with one set of names), resume, the weights files, test evaluation on
request, and the record of an interrupted run.

Run folder files written here: summary.json, model.npz (the weights of the last update) and,
where the task keeps them, model_best.npz (the best evaluation's weights, as the model holds
them at the end); the loop writes metrics.csv and checkpoint.npz.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

from cvlab.config.train import ModelConfig, TrainConfig
from cvlab.families import Family
from cvlab.models.registry import ModelSpec, spec_for
from cvlab.records.files import CHECKPOINT_NAME, METRICS_NAME, WEIGHT_FILES
from cvlab.records.reader import RunFolder, host_name
from cvlab.records.state import save_weights
from cvlab.records.summary import RunSummary, save_summary
from cvlab.run.resume import check_resume, resume_into
from cvlab.train.core import (
    Interrupted,
    LoopOptions,
    LoopResult,
    Records,
    run_loop,
    summary_metrics,
)
from cvlab.train.task import Task

log = logging.getLogger(__name__)

KEPT_STATUSES = ("completed", "diverged")  # an earlier attempt that ended so is kept


def effective_model(spec: ModelSpec, cfg: TrainConfig) -> ModelConfig:
    """The model config the run trains: without its normalization for `baseline=true` (the
    config layer has refused a baseline of a model without one)."""
    model = spec.baseline_model(cfg.model) if cfg.baseline else None
    return model if model is not None else cfg.model


def settings_of(cfg: TrainConfig, model: ModelConfig) -> dict[str, Any]:
    """The values plots and sweep tables group runs by: the trainer's and every scalar field
    of the model's schema (lists joined with x: hidden_dims 50x50x50)."""
    settings: dict[str, Any] = {
        "experiment": cfg.experiment, "baseline": cfg.baseline, "seed": cfg.seed,
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "optimizer": cfg.optimizer.name,
        "learning_rate": cfg.optimizer.learning_rate, "lr_decay": cfg.optimizer.lr_decay,
    }
    for name, value in dataclasses.asdict(model).items():
        if isinstance(value, list):
            value = "x".join(map(str, value))
        settings["model_type" if name == "type" else name] = value
    return settings


def preflight(cfg: TrainConfig) -> None:
    """Everything about a run that can be checked before its folder is made and any data or
    model is loaded: the family's checks of the machine (a GPU, readable files) and, for a
    resumed run, its checkpoint and what may change. UserError, one line."""
    spec = spec_for(cfg.model.type)
    spec.family.preflight(cfg, effective_model(spec, cfg))
    if cfg.resume:
        check_resume(cfg, Path(cfg.resume).expanduser())


def train(cfg: TrainConfig, run_dir: Path, overrides: list[str] | None = None) -> RunSummary:
    """Run `cfg` (a validated TrainConfig) in `run_dir`; return (and write) its summary.

    A run folder that already holds an earlier attempt of this run (a sweep job launched again
    by a resumed sweep, a SLURM job requeued) is continued: kept as it is when that attempt
    completed or diverged, continued from its checkpoint when it has one, run anew otherwise."""
    earlier = RunFolder(run_dir).summary()
    if earlier is not None and earlier.status in KEPT_STATUSES:
        log.info("%s: kept (it %s before)", run_dir, earlier.status)
        return earlier
    if earlier is not None and RunFolder(run_dir).has(CHECKPOINT_NAME):
        log.info("%s: continuing the earlier attempt from its checkpoint", run_dir)
        cfg = dataclasses.replace(cfg, resume=str(run_dir))
    started, cpu_started = time.perf_counter(), time.process_time()
    spec = spec_for(cfg.model.type)
    model = effective_model(spec, cfg)
    summary = RunSummary(command="train", family=spec.family.name, model_type=spec.name,
                         experiment=cfg.experiment, overrides=list(overrides or []),
                         tags=list(cfg.tags),
                         settings=settings_of(cfg, model), pid=os.getpid(), host=host_name())
    save_summary(run_dir, summary)
    try:
        if spec.family.trains:
            _train(cfg, spec, model, run_dir, summary)
        else:
            outcome = spec.family.produce(model, spec.build, run_dir)
            summary.dataset, summary.metrics, summary.files = "images", outcome.metrics, \
                outcome.files
            summary.status = "completed"
    finally:
        summary.wall_time_s = round(time.perf_counter() - started, 3)
        summary.cpu_time_s = round(time.process_time() - cpu_started, 3)
        if summary.status != "running":
            summary.pid = summary.host = None
            save_summary(run_dir, summary)
    log.info(done_line(summary, run_dir))
    return summary


def _train(cfg: TrainConfig, spec: ModelSpec, model: ModelConfig, run_dir: Path,
           summary: RunSummary) -> None:
    family = spec.family
    prepared = family.prepare(cfg, model, spec.build, log.info)
    task = prepared.task
    summary.dataset, summary.dataset_source = prepared.dataset, prepared.dataset_source
    summary.device = prepared.device
    summary.settings.update(prepared.settings)
    summary.details.update(prepared.details)
    source = Path(cfg.resume).expanduser() if cfg.resume else None
    resumed = resume_into(task, cfg, source) if source is not None else None
    summary.resumed_from = str(source) if source is not None else None
    save_summary(run_dir, summary)
    sinks = _sinks(cfg, run_dir)
    records = Records(run_dir, checkpoint=cfg.checkpoint, carry_from=source,
                      meta={"family": family.name, "model_type": spec.name}, sinks=sinks)
    options = LoopOptions(print_every=cfg.print_every, progress=cfg.progress,
                          description=f"train {cfg.experiment or cfg.model.type}",
                          printer=log.info,
                          iteration_printer=log.debug if cfg.progress else log.info)
    result = LoopResult.resumed(resumed) if resumed else LoopResult(status="running")
    with prepared.context:
        try:
            run_loop(task, options, records, result=result)
            _record(summary, family, spec, task, result, run_dir)
        except (Interrupted, SystemExit) as stop:  # a signal, or a scheduler ending the job
            summary.error = f"stopped by {stop}" if isinstance(stop, Interrupted) else \
                "stopped by the scheduler (requeued to continue from its checkpoint)"
            _record(summary, family, spec, task, result, run_dir)
            raise
        finally:
            _close_sinks(sinks, spec, task, summary)
        if cfg.evaluate_test and result.status == "completed":
            summary.metrics.update(task.evaluate_split("test"))


def _sinks(cfg: TrainConfig, run_dir: Path) -> list[Any]:
    if not cfg.logger.tensorboard:
        return []
    from cvlab.train.tensorboard import TensorBoardSink

    return [TensorBoardSink(run_dir / cfg.logger.log_dir)]


def _close_sinks(sinks: list[Any], spec: ModelSpec, task: Task, summary: RunSummary) -> None:
    """The end-of-run pictures (first-layer filters, caption samples) and the run's settings
    with its final metrics (TensorBoard's HParams), then close."""
    from cvlab.images import first_conv_weights

    filters = first_conv_weights(task.weights()) \
        if sinks and "filters" in spec.plot_hooks else None
    samples = task.samples() if sinks else {}
    for sink in sinks:
        if filters is not None:
            sink.add_filters(filters, task.iteration)
        if samples:
            sink.add_captions(samples, task.iteration)
        sink.add_hparams(summary.settings, summary.metrics)
        sink.close()


def _record(summary: RunSummary, family: Family, spec: ModelSpec, task: Task,
            result: LoopResult, run_dir: Path) -> None:
    """Status, final metrics and weights of a run that ended (however it ended)."""
    summary.status = result.status
    summary.metrics.update(summary_metrics(task, result))
    summary.files = [METRICS_NAME]
    if (run_dir / CHECKPOINT_NAME).is_file():
        summary.files.append(CHECKPOINT_NAME)
    weights = {"model": result.last_weights or task.weights(), "model_best": result.best_weights}
    for name, tree in weights.items():
        if tree is not None:
            save_weights(run_dir / WEIGHT_FILES[name], family.name, spec.name, tree)
            summary.files.append(WEIGHT_FILES[name])
    summary.files += task.write_extras(run_dir)


def done_line(summary: RunSummary, run_dir: Path) -> str:
    """`completed, best_val_acc 0.31, ...; results in <run folder>`: how a run ended."""
    parts = [summary.status]
    for name in ("best_val_acc", "final_val_acc", "test_acc", "val_bleu4", "final_loss"):
        value = summary.metric(name)
        if value is not None:
            parts.append(f"{name} {value:.4g}")
    return f"{', '.join(parts)}; results in {run_dir}"
