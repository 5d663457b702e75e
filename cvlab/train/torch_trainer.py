"""The torch trainer: data held on the device, batched augmentation, checks, checkpoints.

    device = resolve_device("auto")                      # torch.device, and a line saying why
    data = DeviceData.from_arrays(X_train, y_train, ..., device=device)
    result = fit(model, data, settings, run_dir)          # FitResult: accuracies, status, speed

Images stay uint8 (N, C, H, W) on the training device; each batch is cropped and mirrored by
one gather (cvlab.train.augment), then normalized with the course's per-channel mean/std.
Each epoch's order and augmentation come from a generator seeded by (seed, epoch), so a run
resumed from its checkpoint draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cvlab.errors import UserError
from cvlab.models.challenge import predict_with_tta
from cvlab.progress import ProgressReporter
from cvlab.runs import MetricsLogger
from cvlab.train.augment import crop_flip, epoch_flips, normalize, random_offsets
from cvlab.train.torch_schedules import Lookahead, lr_factor, make_optimizer

log = logging.getLogger(__name__)

COURSE_MEAN = (0.4914, 0.4822, 0.4465)
COURSE_STD = (0.2023, 0.1994, 0.2010)
METRIC_COLUMNS = ("train_acc", "val_acc", "lr", "elapsed_s")
CHECKPOINT_NAME = "checkpoint.pt"


def resolve_device(name: str) -> tuple[torch.device, str]:
    """torch.device for auto|cpu|cuda|mps and a line saying what was picked (and why)."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if cuda:
            return torch.device("cuda"), f"device: cuda ({torch.cuda.get_device_name(0)}), auto"
        if mps:
            return torch.device("mps"), "device: mps (Apple GPU), auto"
        return torch.device("cpu"), f"device: cpu ({torch.get_num_threads()} threads), auto: no GPU"
    if name == "cuda":
        if not cuda:
            raise UserError("device=cuda but no CUDA GPU is available to torch "
                            f"(torch {torch.__version__}); use device=cpu or device=auto")
        return torch.device("cuda"), f"device: cuda ({torch.cuda.get_device_name(0)})"
    if name == "mps":
        if not mps:
            raise UserError("device=mps but the Apple GPU backend is not available; "
                            "use device=cpu or device=auto")
        return torch.device("mps"), "device: mps"
    return torch.device("cpu"), f"device: cpu ({torch.get_num_threads()} threads)"


@dataclass
class DeviceData:
    """uint8 images (N, C, H, W) and int64 labels of each split, on one device."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def from_arrays(
        cls, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
        X_test: np.ndarray, y_test: np.ndarray, device: torch.device,
        mean: tuple[float, ...] = COURSE_MEAN, std: tuple[float, ...] = COURSE_STD,
    ) -> DeviceData:
        def images(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)).to(device)

        def labels(y: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)

        return cls(images(X_train), labels(y_train), images(X_val), labels(y_val),
                   images(X_test), labels(y_test),
                   torch.tensor(mean, device=device), torch.tensor(std, device=device))


@dataclass
class FitSettings:
    """What `fit` needs beyond the model and the data (plain values)."""

    optimizer: Any  # an OptimizerConfig
    epochs: int = 1
    batch_size: int = 64
    check_every: int = 100  # iterations between accuracy checks (and at each epoch end)
    seed: int = 0
    dtype: torch.dtype = torch.float32
    api: str | None = None
    crop_pad: int = 0
    flip: str = "none"
    padding_mode: str = "reflect"
    tta: str = "none"
    bias_lr_scale: float | None = None
    lookahead_every: int = 0
    amp: str = "none"  # none | bf16 | fp16 (CUDA), none | bf16 (CPU)
    channels_last: bool = False
    compile: bool = False
    num_train_samples: int | None = 1000  # training images for the train-accuracy check
    num_val_samples: int | None = None
    eval_batch_size: int = 1000
    evaluate_test: bool = False
    checkpoint: bool = True
    progress: bool = True
    warmup_steps: int = 0  # untimed steps before training (then undone), for clean timings
    model_signature: dict = field(default_factory=dict)


@dataclass
class FitResult:
    status: str  # completed | diverged
    epochs_done: int
    iterations: int
    final_val_acc: float | None
    best_val_acc: float | None
    test_acc: float | None
    final_loss: float | None
    train_time_s: float
    images_per_s: float
    epoch_times_s: list[float]


def model_signature(model: nn.Module, description: str) -> dict:
    """What a checkpoint must match: a description and every parameter/buffer shape."""
    shapes = {name: list(t.shape) for name, t in model.state_dict().items()}
    return {"description": description, "shapes": shapes}


def check_signature(saved: dict, current: dict, path: Path) -> None:
    if saved.get("shapes") != current.get("shapes"):
        raise UserError(
            f"checkpoint {path} is for {saved.get('description', 'another model')}, not for "
            f"this run's {current.get('description')}; resume with the same model settings "
            "or start a new run"
        )


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX tiles or AVX512-BF16)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "none" or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _batch(x: torch.Tensor, data: DeviceData, s: FitSettings) -> torch.Tensor:
    x = normalize(x, data.mean, data.std, s.dtype)
    return x.contiguous(memory_format=torch.channels_last) if s.channels_last else x


@torch.no_grad()
def check_accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, data: DeviceData,
    s: FitSettings, device: torch.device,
) -> float:
    """Fraction of `images` (uint8, N, C, H, W) the model classifies right (eval mode, TTA)."""
    if len(labels) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    for start in range(0, len(labels), s.eval_batch_size):
        x = _batch(images[start:start + s.eval_batch_size], data, s)
        with _autocast(device, s.amp):
            scores = predict_with_tta(model, x, s.tta)
        correct += (scores.argmax(1) == labels[start:start + s.eval_batch_size]).sum()
    model.train(was_training)
    return correct.item() / len(labels)


def _train_step(
    step_model: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None, x: torch.Tensor, y: torch.Tensor, s: FitSettings,
    device: torch.device,
) -> torch.Tensor:
    """One forward/backward/update on batch x (N, C, H, W), labels y (N,); the loss tensor."""
    with _autocast(device, s.amp):
        scores = step_model(x)
    loss = F.cross_entropy(scores.float(), y, label_smoothing=s.optimizer.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if s.optimizer.grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), s.optimizer.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss


def _warm_up(
    step_model: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None, data: DeviceData, s: FitSettings, device: torch.device,
) -> None:
    """Run a few untimed steps and an evaluation (kernel selection, compilation), then restore
    the model and optimizer: results are unchanged, only the timing excludes the start-up."""
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    num_train = len(data.y_train)
    sizes = [min(s.batch_size, num_train)] * s.warmup_steps
    if num_train % s.batch_size:
        sizes.append(num_train % s.batch_size)
    for size in sizes:
        x = _batch(data.X_train[:size], data, s)
        _train_step(step_model, model, optimizer, scaler, x, data.y_train[:size], s, device)
    count = min(len(data.y_val), s.eval_batch_size)
    check_accuracy(step_model, data.X_val[:count], data.y_val[:count], data, s, device)
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_optimizer)
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()


def _subset(images: torch.Tensor, labels: torch.Tensor, count: int | None, seed: int):
    if count is None or count >= len(labels):
        return images, labels
    index = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:count]
    index = index.to(images.device)
    return images[index], labels[index]


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(run_folder: str | Path, signature: dict) -> dict:
    """The checkpoint of an earlier run folder, checked against this run's model signature."""
    path = Path(run_folder).expanduser() / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"resume={run_folder} has no {CHECKPOINT_NAME}; give the folder of a "
                        "torch run that was started with checkpoint=true")
    state = torch.load(path, map_location="cpu", weights_only=False)
    check_signature(state.get("signature", {}), signature, path)
    return state


def fit(
    model: nn.Module, data: DeviceData, s: FitSettings, run_dir: Path, device: torch.device,
    resume_state: dict | None = None, announce: Callable[[str], None] = print,
) -> FitResult:
    """Train `model` (already on `device`) and log to run_dir; see the module docstring."""
    run_dir = Path(run_dir)
    num_train = len(data.y_train)
    steps_per_epoch = math.ceil(num_train / s.batch_size)
    total_steps = steps_per_epoch * s.epochs
    optimizer = make_optimizer(model, s.optimizer, s.api, s.bias_lr_scale)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    scaler = torch.amp.GradScaler("cuda") if (s.amp == "fp16" and device.type == "cuda") else None
    lookahead = Lookahead(model, s.lookahead_every) if s.lookahead_every else None
    step_model = torch.compile(model) if s.compile else model
    start_epoch, iteration, best_val, final_val = 0, 0, None, None
    history: list[float] = []
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        if lookahead is not None and resume_state.get("lookahead") is not None:
            lookahead.load_state_dict(resume_state["lookahead"])
        if scaler is not None and resume_state.get("scaler") is not None:
            scaler.load_state_dict(resume_state["scaler"])
        start_epoch, iteration = resume_state["epoch"], resume_state["iteration"]
        best_val, final_val = resume_state.get("best_val_acc"), resume_state.get("final_val_acc")
        history = list(resume_state.get("history", []))
        announce(f"resumed after epoch {start_epoch} (iteration {iteration})")
    train_check = _subset(data.X_train, data.y_train, s.num_train_samples, s.seed + 1)
    val_check = _subset(data.X_val, data.y_val, s.num_val_samples, s.seed + 2)
    metrics = MetricsLogger(run_dir, METRIC_COLUMNS,
                            truncate_after_iteration=iteration if resume_state else None)
    status, final_loss, train_time, epoch_times = "completed", None, 0.0, []
    pending: list[tuple[int, int, torch.Tensor, float]] = []
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def flush() -> bool:
        """Write the buffered per-iteration losses; False when one is not finite."""
        nonlocal final_loss
        if not pending:
            return True
        values = torch.stack([p[2] for p in pending]).float().cpu().tolist()
        for (it, ep, _, lr), value in zip(pending, values):
            metrics.log(iteration=it, epoch=ep, loss=value, lr=lr)
        pending.clear()
        final_loss = values[-1]
        return all(math.isfinite(v) for v in values)

    def check(epoch: int) -> float:
        nonlocal best_val, final_val
        train_acc = check_accuracy(step_model, *train_check, data, s, device)
        val_acc = check_accuracy(step_model, *val_check, data, s, device)
        final_val = val_acc
        best_val = val_acc if best_val is None or val_acc > best_val else best_val
        history.append(val_acc)
        metrics.log(iteration=iteration, epoch=epoch, train_acc=train_acc, val_acc=val_acc)
        return val_acc

    if s.warmup_steps and start_epoch < s.epochs:
        _warm_up(step_model, model, optimizer, scaler, data, s, device)
    reporter = ProgressReporter(total_steps - iteration, "train", enabled=s.progress)
    with metrics, reporter:
        for epoch in range(start_epoch, s.epochs):
            synchronize()
            mark = time.perf_counter()
            epoch_start = mark
            epoch_eval = 0.0
            if hasattr(model, "on_epoch_start"):
                model.on_epoch_start(epoch)
            generator = torch.Generator().manual_seed(s.seed * 1_000_003 + epoch)
            order = torch.randperm(num_train, generator=generator)
            flips = epoch_flips(num_train, epoch, s.flip, s.seed, generator)
            offsets = random_offsets(num_train, s.crop_pad, generator) if s.crop_pad else None
            augment = s.crop_pad > 0 or s.flip != "none"
            order_dev = order.to(device)
            if augment:
                flips_dev = flips[order].to(device)
                offsets_dev = (offsets[order] if offsets is not None
                               else torch.zeros(num_train, 2, dtype=torch.long)).to(device)
            for start in range(0, num_train, s.batch_size):
                index = order_dev[start:start + s.batch_size]
                x = data.X_train[index]
                if augment:
                    x = crop_flip(x, offsets_dev[start:start + s.batch_size],
                                  flips_dev[start:start + s.batch_size], s.padding_mode)
                x = _batch(x, data, s)
                y = data.y_train[index]
                factor = lr_factor(s.optimizer, iteration, total_steps, steps_per_epoch)
                for group, base in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base * factor
                loss = _train_step(step_model, model, optimizer, scaler, x, y, s, device)
                iteration += 1
                if lookahead is not None:
                    lookahead.after_step(iteration, total_steps)
                pending.append((iteration, epoch, loss.detach(), base_lrs[-1] * factor))
                if device.type == "cpu" or iteration % s.check_every == 0:
                    if not flush():
                        status = "diverged"
                        break
                    reporter.advance(len(pending) or 1, loss=final_loss, epoch=epoch)
                else:
                    reporter.advance(1)
                if iteration % s.check_every == 0 and start + s.batch_size < num_train:
                    synchronize()
                    now = time.perf_counter()
                    train_time += now - mark
                    check(epoch)
                    mark = time.perf_counter()
                    epoch_eval += mark - now
            if status == "completed" and not flush():
                status = "diverged"
            synchronize()
            now = time.perf_counter()
            train_time += now - mark
            epoch_times.append(now - epoch_start - epoch_eval)
            if status != "completed":
                announce(f"loss is not finite at iteration {iteration}: stopping (diverged)")
                break
            if lookahead is not None and epoch == s.epochs - 1:
                lookahead.finish()
            val_acc = check(epoch)
            announce(f"epoch {epoch + 1}/{s.epochs}: loss {final_loss:.4f}, val_acc {val_acc:.4f}, "
                     f"{epoch_times[-1]:.2f}s")
            if s.checkpoint:
                _save_checkpoint(run_dir / CHECKPOINT_NAME, {
                    "signature": s.model_signature, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "lookahead": lookahead.state_dict() if lookahead is not None else None,
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "epoch": epoch + 1, "iteration": iteration, "best_val_acc": best_val,
                    "final_val_acc": final_val, "history": history,
                })
    test_acc = None
    if s.evaluate_test and status == "completed":
        test_acc = check_accuracy(step_model, data.X_test, data.y_test, data, s, device)
        announce(f"test accuracy: {test_acc:.4f} on {len(data.y_test)} images")
    trained_images = (iteration - (resume_state or {}).get("iteration", 0)) * s.batch_size
    images_per_s = min(trained_images, num_train * len(epoch_times)) / max(train_time, 1e-9)
    return FitResult(status, len(epoch_times) + start_epoch, iteration, final_val, best_val,
                     test_acc, final_loss, train_time, images_per_s, epoch_times)
