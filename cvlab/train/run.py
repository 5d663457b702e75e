"""`cvlab train` in a run folder, whatever the model's family.

    summary = train(cfg, run_dir, overrides)      # a RunSummary, also in run_dir/summary.json

The model type's spec (cvlab.models.registry) names its family; the family's module
(numpy_task, torch_task, caption_task) loads the data and builds the model and its Task;
cvlab.train.core runs the loop. Everything around the loop is done here, once for every
family: the summary (status, settings, final metrics with one set of names), resume, the
weights files, test evaluation on request, and the record of an interrupted run.

Run folder files written here: summary.json, model.npz (the weights the run ended with:
for numpy runs the best-validation params, as the course restores them) and, where the family
keeps it, model_best.npz (the best-validation weights); the loop writes metrics.csv and
checkpoint.npz.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvlab.errors import UserError
from cvlab.models.registry import ModelSpec, spec_for
from cvlab.records.files import CHECKPOINT_NAME, flatten
from cvlab.records.summary import RunSummary, save_summary
from cvlab.train.core import (
    Interrupted,
    LoopOptions,
    LoopResult,
    Records,
    final_loss_metrics,
    run_loop,
)
from cvlab.train.tensorboard import TensorBoardSink

log = logging.getLogger(__name__)

FAMILY_MODULES = {
    "numpy": "cvlab.train.numpy_task",
    "torch": "cvlab.train.torch_task",
    "captioning": "cvlab.train.caption_task",
}
WEIGHTS_KIND = "weights"
# Fields a resumed run may change; any other difference from the stored config is refused.
RESUMABLE_CHANGES = ("epochs", "print_every", "progress", "checkpoint", "evaluate_test",
                     "train_eval_samples", "val_eval_samples", "resume", "outputs_root",
                     "optimizer.learning_rate", "optimizer.lr_decay", "device.")


@dataclass
class Prepared:
    """A family's run, ready to train: its task and what the summary says about it."""

    task: Any  # a core Task with final_metrics, evaluate_split, weights, scale_learning_rate
    dataset: str
    dataset_source: str | None = None
    device: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    context: contextlib.AbstractContextManager = field(default_factory=contextlib.nullcontext)


def effective_model(spec: ModelSpec, cfg: Any) -> Any:
    """The model config the run trains: without its normalization for `baseline=true`."""
    if not cfg.baseline:
        return cfg.model
    model = spec.baseline_model(cfg.model)
    if model is None:
        raise UserError(f"baseline=true drops the model's normalization, but model.type="
                        f"{spec.name} has none to drop; use a normalized model (model=bn_fc or "
                        "model=ln_fc) or baseline=false")
    return model


def settings_of(cfg: Any, model_cfg: Any) -> dict[str, Any]:
    """The values plots and sweep tables group runs by: the trainer's and every scalar field
    of the model's schema (lists joined with x: hidden_dims 50x50x50)."""
    settings: dict[str, Any] = {
        "experiment": cfg.experiment, "baseline": cfg.baseline, "seed": cfg.seed,
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "optimizer": cfg.optimizer.name,
        "learning_rate": cfg.optimizer.learning_rate, "lr_decay": cfg.optimizer.lr_decay,
    }
    for name, value in dataclasses.asdict(model_cfg).items():
        if isinstance(value, list):
            value = "x".join(map(str, value))
        settings["model_type" if name == "type" else name] = value
    return settings


def train(cfg: Any, run_dir: Path, overrides: list[str] | None = None) -> RunSummary:
    """Run `cfg` (a validated TrainConfig) in `run_dir`; return (and write) its summary."""
    started, cpu_started = time.perf_counter(), time.process_time()
    spec = spec_for(cfg.model.type)
    model_cfg = effective_model(spec, cfg)
    summary = RunSummary(command="train", family=spec.family, model_type=spec.name,
                         experiment=cfg.experiment, overrides=list(overrides or []),
                         settings=settings_of(cfg, model_cfg))
    save_summary(run_dir, summary)
    try:
        if spec.family == "demo":
            _run_demo(spec, model_cfg, run_dir, summary)
        else:
            _run_training(cfg, spec, model_cfg, run_dir, summary)
    finally:
        summary.wall_time_s = round(time.perf_counter() - started, 3)
        summary.cpu_time_s = round(time.process_time() - cpu_started, 3)
        if summary.status != "running":
            save_summary(run_dir, summary)
    _say_done(summary, run_dir)
    return summary


def _run_demo(spec: ModelSpec, model_cfg: Any, run_dir: Path, summary: RunSummary) -> None:
    out = spec.build(model_cfg, run_dir)
    summary.dataset, summary.metrics, summary.files = "images", out["metrics"], out["files"]
    summary.status = "completed"


def _run_training(cfg: Any, spec: ModelSpec, model_cfg: Any, run_dir: Path,
                  summary: RunSummary) -> None:
    family = importlib.import_module(FAMILY_MODULES[spec.family])
    prepared: Prepared = family.prepare(cfg, spec, model_cfg, log.info)
    task = prepared.task
    summary.dataset, summary.dataset_source = prepared.dataset, prepared.dataset_source
    summary.device = prepared.device
    summary.settings.update(prepared.settings)
    source, resumed = (resume_into(task, cfg, spec, Path(cfg.resume)) if cfg.resume
                       else (None, None))
    summary.resumed_from = str(source) if source else None
    save_summary(run_dir, summary)
    sinks = [TensorBoardSink(run_dir / cfg.logger.log_dir)] if cfg.logger.tensorboard else []
    records = Records(run_dir, checkpoint=cfg.checkpoint, carry_from=source,
                      meta={"family": spec.family, "model_type": spec.name}, sinks=sinks)
    options = LoopOptions(print_every=cfg.print_every, progress=cfg.progress,
                          description=f"train {cfg.experiment or cfg.model.type}",
                          printer=log.info,
                          iteration_printer=log.debug if cfg.progress else log.info)
    with prepared.context:
        try:
            result = run_loop(task, options, records, resumed)
        except Interrupted as interrupted:
            _record(summary, task, interrupted.result, run_dir)  # type: ignore[attr-defined]
            raise
        finally:
            _close_sinks(sinks, spec, task)
        _record(summary, task, result, run_dir)
        if cfg.evaluate_test and result.status == "completed":
            summary.metrics.update(task.evaluate_split("test"))


def _close_sinks(sinks: list[Any], spec: ModelSpec, task: Any) -> None:
    """The end-of-run pictures (first-layer filters, caption samples), then close."""
    from cvlab.plot.images import first_conv_weights

    filters = first_conv_weights(task.weights()["model"]) \
        if sinks and "filters" in spec.plot_hooks else None
    for sink in sinks:
        if filters is not None:
            sink.add_filters(filters, task.iteration)
        if hasattr(task, "samples") and getattr(task, "generated", None):
            sink.add_captions(task.samples(), task.iteration)
        sink.close()


def _record(summary: RunSummary, task: Any, result: LoopResult, run_dir: Path) -> None:
    """Status, final metrics and weights of a run that ended (however it ended)."""
    summary.status = result.status
    summary.metrics.update(final_loss_metrics(result.losses))
    summary.metrics.update(task.final_metrics(result))
    summary.files = ["metrics.csv"]
    if (run_dir / CHECKPOINT_NAME).is_file():
        summary.files.append(CHECKPOINT_NAME)
    summary.files += save_weights(run_dir, task.weights(), summary)
    summary.files += task.write_extras(run_dir)


def save_weights(run_dir: Path, weights: dict[str, dict[str, Any]],
                 summary: RunSummary) -> list[str]:
    """Write each named set of weights (model, model_best) to <name>.npz; the file names."""
    from cvlab.records.state import save_state

    files = []
    for name, arrays in weights.items():
        save_state(run_dir / f"{name}.npz",
                   {"family": summary.family, "model_type": summary.model_type,
                    "weights": arrays}, kind=WEIGHTS_KIND)
        files.append(f"{name}.npz")
    return files


def load_weights(path: Path) -> dict[str, Any]:
    """The tree save_weights wrote: family, model_type and the weights (StateError if not)."""
    from cvlab.records.state import load_state

    return load_state(path, kind=WEIGHTS_KIND)


def resume_into(task: Any, cfg: Any, spec: ModelSpec, source: Path) -> tuple[Path, dict]:
    """Load the checkpoint of the run folder `source` into `task`; the loop's part back.

    The overrides of the new run were checked against the stored config: those that change
    what the checkpoint holds are refused (UserError), a new learning rate is applied."""
    from cvlab.records.state import load_state

    source = source.expanduser()
    path = source / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"resume={source}: no {CHECKPOINT_NAME} there (a checkpoint is written "
                        "at each epoch end of a run with checkpoint=true)")
    tree = load_state(path)
    meta = tree.get("meta", {})
    if meta.get("model_type") != spec.name:
        raise UserError(f"resume={source}: its checkpoint is of a {meta.get('model_type')!r} "
                        f"model, not {spec.name!r}; resume with the run's own model")
    stored = check_resume_config(cfg, source)
    try:
        task.load_state(tree["task"])
    except (ValueError, KeyError, RuntimeError) as err:
        raise UserError(f"resume={source}: its checkpoint does not fit this run ({err}); "
                        "resume with the run's own model, data and batch size") from None
    stored_lr = stored.get("optimizer", {}).get("learning_rate")
    if isinstance(stored_lr, (int, float)) and stored_lr > 0 \
            and not math.isclose(stored_lr, cfg.optimizer.learning_rate, rel_tol=0, abs_tol=0):
        task.scale_learning_rate(cfg.optimizer.learning_rate / stored_lr)
        log.info("resume: learning rate %g (was %g)", cfg.optimizer.learning_rate, stored_lr)
    log.info("resumed from %s at epoch %d (iteration %d)", source, task.epoch, task.iteration)
    return source, tree["loop"]


def check_resume_config(cfg: Any, source: Path) -> dict[str, Any]:
    """The stored config of the run folder `source`; UserError (one line) when `cfg` changes
    something a resumed run cannot change (the model, the data, the batch size, ...)."""
    stored = _stored_config(source)
    _check_resume_changes(stored, cfg, source)
    return stored


def _stored_config(source: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = source / "config.yaml"
    try:
        stored = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except (OSError, OmegaConfBaseException, ValueError) as err:
        raise UserError(f"resume={source}: cannot read its config.yaml ({err})") from None
    if not isinstance(stored, dict):
        raise UserError(f"resume={source}: its config.yaml is not a config")
    return stored


def _check_resume_changes(stored: dict[str, Any], cfg: Any, source: Path) -> None:
    current = flatten(dataclasses.asdict(cfg))
    before = flatten(stored)
    for key, value in current.items():
        if key.startswith(RESUMABLE_CHANGES) or key not in before:
            continue
        if before[key] != value and not (_number(before[key]) and _number(value)
                                         and float(before[key]) == float(value)):
            raise UserError(f"resume={source}: {key}={value!r} cannot apply to a resumed run "
                            f"(it ran with {before[key]!r}); drop that override, or start a "
                            "new run")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _say_done(summary: RunSummary, run_dir: Path) -> None:
    log.info(done_line(summary, run_dir))


def done_line(summary: RunSummary, run_dir: Path) -> str:
    """`completed, best_val_acc 0.31, ...; results in <run folder>`: how a run ended."""
    parts = [summary.status]
    for name in ("best_val_acc", "final_val_acc", "test_acc", "val_bleu4", "final_loss"):
        value = summary.metric(name)
        if value is not None:
            parts.append(f"{name} {value:.4g}")
    return f"{', '.join(parts)}; results in {run_dir}"
