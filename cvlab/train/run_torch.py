"""`cvlab train` for the torch models: config -> data on the device -> model -> fit -> summary.

    run(cfg, run_dir) -> exit code      (cfg: a validated TrainConfig whose model family is torch)
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvlab.config.train import TrainConfig
from cvlab.errors import UserError
from cvlab.runs import write_summary
from cvlab.train.torch_schedules import check_schedule
from cvlab.train.torch_trainer import (
    DeviceData,
    FitResult,
    FitSettings,
    cpu_has_native_bf16,
    fit,
    load_checkpoint,
    model_signature,
    resolve_device,
)

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_model(model_cfg: Any, input_shape: tuple[int, int, int], num_classes: int,
                seed: int) -> nn.Module:
    """The torch model of `model_cfg` (torch_fc | torch_cnn | challenge), seeded by `seed`."""
    from cvlab.models.challenge import ChallengeNet
    from cvlab.models.torch_nets import build_three_layer_convnet, build_two_layer_fc

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    if model_cfg.type == "torch_fc":
        return build_two_layer_fc(model_cfg.api, input_shape, model_cfg.hidden_dim, num_classes,
                                  generator=generator)
    if model_cfg.type == "torch_cnn":
        return build_three_layer_convnet(model_cfg.api, input_shape, model_cfg.channel_1,
                                         model_cfg.channel_2, num_classes, generator=generator)
    if model_cfg.type == "challenge":
        return ChallengeNet(tuple(model_cfg.widths), num_classes, model_cfg.bn_momentum,
                            model_cfg.scaling_factor, model_cfg.whiten_bias_epochs,
                            in_channels=input_shape[0], depth=model_cfg.depth)
    raise UserError(f"model.type={model_cfg.type!r} is not a torch model")


def describe(model_cfg: Any, model: nn.Module) -> str:
    count = sum(p.numel() for p in model.parameters())
    settings = {k: v for k, v in asdict(model_cfg).items()
                if k not in ("type", "crop_pad", "flip", "padding_mode", "tta")}
    fields = ", ".join(f"{k}={v}" for k, v in settings.items())
    return f"model {model_cfg.type} ({fields}; {count} parameters)"


def resolve_amp(amp: str, device: torch.device) -> str:
    """The mixed precision actually used: as asked on CUDA; on CPU bf16 only where the CPU has
    it in hardware (elsewhere it would be slower than float32); none on other devices."""
    if amp == "none" or device.type == "cuda":
        return amp
    if device.type == "cpu" and amp == "bf16":
        if cpu_has_native_bf16():
            log.info("device.amp=bf16 on CPU: autocast to bf16 (this CPU has AMX/AVX512-BF16)")
            return amp
        log.info("device.amp=bf16: this CPU has no native bf16 (AMX/AVX512-BF16); running in "
                 "float32")
        return "none"
    log.info("device.amp=%s applies on CUDA (and bf16 on CPU); running in float32", amp)
    return "none"


def settings_from(cfg: TrainConfig, device: torch.device) -> FitSettings:
    model_cfg = cfg.model
    amp = resolve_amp(cfg.device.amp, device)
    if amp != "none" and model_cfg.dtype == "float64":
        raise UserError(f"device.amp={amp} with model.dtype=float64 is not allowed; use float32 "
                        "or device.amp=none")
    challenge = model_cfg.type == "challenge"
    return FitSettings(
        optimizer=cfg.optimizer, epochs=cfg.epochs, batch_size=cfg.batch_size,
        check_every=cfg.print_every, seed=cfg.seed, dtype=DTYPES[model_cfg.dtype],
        api=getattr(model_cfg, "api", None), crop_pad=model_cfg.crop_pad, flip=model_cfg.flip,
        padding_mode=model_cfg.padding_mode, tta=model_cfg.tta,
        bias_lr_scale=model_cfg.bias_lr_scale if challenge else None,
        lookahead_every=model_cfg.lookahead_every if challenge else 0,
        amp=amp, channels_last=cfg.device.channels_last and device.type != "mps",
        compile=cfg.device.compile, num_train_samples=cfg.num_train_samples,
        num_val_samples=cfg.num_val_samples, evaluate_test=cfg.evaluate_test,
        checkpoint=cfg.checkpoint, progress=cfg.progress,
        warmup_steps=3 if device.type == "cuda" else 0,
    )


def run(cfg: TrainConfig, run_dir: Path) -> int:
    """Train cfg.model on cfg.dataset; write metrics.csv, checkpoint.pt and summary.json."""
    from cvlab.data import load_splits

    started = time.perf_counter()
    run_dir = Path(run_dir)
    check_schedule(cfg.optimizer)
    if cfg.device.threads:
        torch.set_num_threads(cfg.device.threads)
    device, device_line = resolve_device(cfg.device.name)
    log.info(device_line)
    splits = load_splits(cfg.dataset, announce=log.info)
    write_summary(run_dir, status="running", dataset=splits.name, device=str(device),
                  experiment=cfg.experiment)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    data = DeviceData.from_arrays(splits.X_train, splits.y_train, splits.X_val, splits.y_val,
                                  splits.X_test, splits.y_test, device)
    input_shape = tuple(splits.X_train.shape[1:])
    model = build_model(cfg.model, input_shape, splits.num_classes, cfg.seed)
    model = model.to(device=device, dtype=DTYPES[cfg.model.dtype])
    settings = settings_from(cfg, device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    description = describe(cfg.model, model)
    settings.model_signature = model_signature(model, description)
    resume_state = None
    if cfg.resume:
        resume_state = load_checkpoint(cfg.resume, settings.model_signature)
        _carry_metrics(Path(cfg.resume).expanduser(), run_dir)
    elif hasattr(model, "init_whitening"):
        _init_whitening(model, data, settings)
    log.info(description)
    result = fit(model, data, settings, run_dir, device, resume_state, announce=log.info)
    write_summary(run_dir, **_summary(result, splits, device, cfg, time.perf_counter() - started))
    log.info("%s: final val_acc %s, best val_acc %s%s, %.0f images/s (training), %.1fs",
             result.status, _fmt(result.final_val_acc), _fmt(result.best_val_acc),
             f", test_acc {result.test_acc:.4f}" if result.test_acc is not None else "",
             result.images_per_s, result.train_time_s)
    return 0


def _init_whitening(model: nn.Module, data: DeviceData, settings: FitSettings,
                    count: int = 5000) -> None:
    from cvlab.train.augment import normalize

    images = normalize(data.X_train[:count], data.mean, data.std, torch.float32)
    model.init_whitening(images)


def _carry_metrics(previous: Path, run_dir: Path) -> None:
    source = previous / "metrics.csv"
    if source.is_file() and not (run_dir / "metrics.csv").exists():
        (run_dir / "metrics.csv").write_text(source.read_text())


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _summary(result: FitResult, splits: Any, device: torch.device, cfg: TrainConfig,
             wall_time_s: float) -> dict:
    metrics = {
        "final_val_acc": result.final_val_acc,
        "best_val_acc": result.best_val_acc,
        "final_loss": result.final_loss,
        "epochs": result.epochs_done,
        "iterations": result.iterations,
        "train_time_s": round(result.train_time_s, 3),
        "images_per_s": round(result.images_per_s, 1),
        "epoch_times_s": [round(t, 3) for t in result.epoch_times_s],
    }
    if result.test_acc is not None:
        metrics["test_acc"] = result.test_acc
    return {
        "status": result.status, "dataset": splits.name, "device": _device_name(device),
        "wall_time_s": round(wall_time_s, 3), "metrics": metrics,
        "sizes": splits.sizes(),
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"{device.type} ({torch.get_num_threads()} threads)" if device.type == "cpu" else "mps"
