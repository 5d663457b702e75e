"""Resuming a run: what may change, checked before any work, and the checkpoint loaded into a
prepared task.

    check_resume(cfg, source)                 # UserError (one line) before the folder is made
    loop_state = resume_into(task, cfg, source)

A resumed run is the stored run continued: its config is the base, and only the fields in
RESUMABLE_CHANGES may differ (more epochs, another learning rate, evaluation settings, the
device). A new learning rate is applied to the loaded optimizer state.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

from cvlab.config.train import TrainConfig
from cvlab.errors import UserError
from cvlab.records.files import CHECKPOINT_NAME, RecordError, flatten
from cvlab.records.reader import RunFolder
from cvlab.train.task import Task

log = logging.getLogger(__name__)

# Fields a resumed run may change; any other difference from the stored config is refused.
RESUMABLE_CHANGES = ("epochs", "print_every", "progress", "checkpoint", "evaluate_test",
                     "train_eval_samples", "val_eval_samples", "resume", "outputs_root",
                     "optimizer.learning_rate", "optimizer.lr_decay", "device.")


def check_resume(cfg: TrainConfig, source: Path) -> None:
    """UserError (one line) when `source` holds no usable checkpoint of `cfg`'s model, or when
    `cfg` changes something a resumed run cannot change (the model, the data, the batch
    size, ...). Reads the checkpoint's structure, not its arrays' use: before any work."""
    folder = RunFolder(source)
    if not folder.has(CHECKPOINT_NAME):
        raise UserError(f"resume={source}: no {CHECKPOINT_NAME} there (a checkpoint is written "
                        "at each epoch end of a run with checkpoint=true)")
    try:
        folder.check()  # every file of the folder, as eval and plot check it
        stored = folder.config()
        meta = folder.checkpoint_meta()
    except RecordError as err:
        raise UserError(f"resume={source}: {err}") from None
    if meta.get("model_type") != cfg.model.type:
        raise UserError(f"resume={source}: its checkpoint is of a {meta.get('model_type')!r} "
                        f"model, not {cfg.model.type!r}; resume with the run's own model")
    change = first_change(flatten(dataclasses.asdict(cfg)), flatten(stored),
                          missing_differs=False)
    if change is not None:
        key, value, before = change
        raise UserError(f"resume={source}: {key}={value!r} cannot apply to a resumed run "
                        f"(it ran with {before!r}); drop that override, or start a new run")


def first_change(now: dict[str, Any], before: dict[str, Any], missing_differs: bool
                 ) -> tuple[str, Any, Any] | None:
    """(key, value now, value before) of the first field of the flat config `now` that differs
    from `before` (numbers compared as numbers), those a resumed run may change
    (RESUMABLE_CHANGES) left out; a key `before` lacks is a change ("<not set>") only when
    `missing_differs`. None: nothing that matters changed."""
    for key, value in now.items():
        if key.startswith(RESUMABLE_CHANGES) or (key not in before and not missing_differs):
            continue
        old = before.get(key, "<not set>")
        if old != value and not (_number(old) and _number(value) and float(old) == float(value)):
            return key, value, old
    return None


def resume_into(task: Task, cfg: TrainConfig, source: Path) -> dict[str, Any]:
    """Load the checkpoint of the run folder `source` (checked by check_resume) into `task`;
    the loop's part back. A new learning rate is applied."""
    folder = RunFolder(source)
    tree = folder.checkpoint()
    try:
        task.load_state(tree["task"])
    except (ValueError, KeyError, RuntimeError) as err:
        raise UserError(f"resume={source}: its checkpoint does not fit this run ({err}); "
                        "resume with the run's own model, data and batch size") from None
    stored_lr = folder.config().get("optimizer", {}).get("learning_rate")
    if _number(stored_lr) and stored_lr > 0 and stored_lr != cfg.optimizer.learning_rate:
        task.scale_learning_rate(cfg.optimizer.learning_rate / stored_lr)
        log.info("resume: learning rate %g (was %g)", cfg.optimizer.learning_rate, stored_lr)
    log.info("resumed from %s at epoch %d (iteration %d)", source, task.epoch, task.iteration)
    return tree["loop"]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
