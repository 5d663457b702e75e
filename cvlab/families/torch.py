"""The PyTorch family: the course's PyTorch classifiers and the challenge net, trained on the
training device with batched augmentation, schedules, lookahead and test-time augmentation
(cvlab.train.torch_task).

A model config sets the trainer's options by having fields of their names (TorchOptions:
dtype, api, crop_pad, flip, padding_mode, tta, bias_lr_scale, lookahead_every); the options it
does not have take their defaults. A torch model type needs no particular base class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cvlab.config.train import ModelConfig, TrainConfig
from cvlab.data.constants import IMAGE_DATASETS
from cvlab.families import Announce, Build, Family, Prepared
from cvlab.validation import ConfigError


@dataclass(frozen=True)
class TorchOptions:
    """The options of the trainer a model config may set (by having a field of the name)."""

    dtype: str = "float32"
    api: str = "module"  # barebones: the manual `w -= lr * dw` update
    crop_pad: int = 0
    flip: str = "none"
    padding_mode: str = "reflect"
    tta: str = "none"
    bias_lr_scale: float = 1.0
    lookahead_every: int = 0

    @classmethod
    def of(cls, model: ModelConfig) -> TorchOptions:
        """The options `model` sets (its fields named like them), the rest by default."""
        names = {item.name for item in dataclasses.fields(cls)}
        return cls(**{item.name: getattr(model, item.name)
                      for item in dataclasses.fields(model) if item.name in names})


class TorchFamily(Family):
    name = "torch"
    words = "PyTorch models"
    datasets = IMAGE_DATASETS
    unused_fields = ("dataset.subtract_mean",)

    def check(self, cfg: TrainConfig) -> None:
        options = TorchOptions.of(cfg.model)
        if cfg.device.amp != "none" and options.dtype == "float64":
            raise ConfigError("device.amp", cfg.device.amp, "none with model.dtype=float64 "
                              "(mixed precision needs float32 weights); use model.dtype=float32")

    def preflight(self, cfg: TrainConfig, model: ModelConfig) -> None:
        from cvlab.train.device import resolve_device

        resolve_device(cfg.device.name)  # device=cuda without a GPU: one line, nothing made

    def prepare(self, cfg: TrainConfig, model: ModelConfig, build: Build,
                announce: Announce) -> Prepared:
        """Data on the device, the model (`build(model, input_shape, num_classes, seed)`) in
        the options' dtype and memory format, and its task."""
        import torch

        from cvlab.data import load_splits
        from cvlab.data.load import cache_details
        from cvlab.train.augment import normalize
        from cvlab.train.device import device_name, open_device
        from cvlab.train.task import untrained_softmax_loss
        from cvlab.train.torch_task import DTYPES, DeviceData, TorchRunTask, hooks_of, warm_up

        device = open_device(cfg.device, announce)
        splits = load_splits(cfg.dataset, announce=announce)
        data = DeviceData.from_splits(splits, device)
        options = TorchOptions.of(model)
        net = build(model, tuple(splits.X_train.shape[1:]), splits.num_classes, cfg.seed)
        net = net.to(device=device, dtype=DTYPES[options.dtype])
        recipe = recipe_of(cfg, options, device)
        if recipe.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if not cfg.resume:
            hooks_of(net).before_training(
                normalize(data.X_train[:5000], data.mean, data.std, torch.float32))
        announce(f"model {model.type}: {sum(p.numel() for p in net.parameters())} parameters")
        task = TorchRunTask(net, data, recipe, device)
        task.untrained_loss = untrained_softmax_loss(splits.num_classes)
        if device.type == "cuda":
            warm_up(task)
        return Prepared(task=task, dataset=splits.name, dataset_source=splits.source,
                        device=device_name(device), settings={"num_train": len(splits.y_train)},
                        details=cache_details(splits.info))


def recipe_of(cfg: TrainConfig, options: TorchOptions, device: Any) -> Any:
    """The trainer's Recipe: the config's training fields and the model's options."""
    from cvlab.train.torch_task import DTYPES, Recipe, resolve_amp

    amp = resolve_amp(cfg.device.amp, device)
    return Recipe(
        optimizer=cfg.optimizer, epochs=cfg.epochs, batch_size=cfg.batch_size,
        check_every=cfg.print_every, seed=cfg.seed, dtype=DTYPES[options.dtype],
        manual_sgd=options.api == "barebones", crop_pad=options.crop_pad, flip=options.flip,
        padding_mode=options.padding_mode, tta=options.tta, bias_lr_scale=options.bias_lr_scale,
        lookahead_every=options.lookahead_every, amp=amp,
        channels_last=cfg.device.channels_last and device.type != "mps",
        compile=cfg.device.compile, train_eval_samples=cfg.train_eval_samples,
        val_eval_samples=cfg.val_eval_samples,
    )


TORCH = TorchFamily()
