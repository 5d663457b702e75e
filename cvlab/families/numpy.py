"""The numpy family: the course's models (FullyConnectedNet, ThreeLayerConvNet and any model
with params, buffers and loss) trained by the course's Solver.

The Solver draws minibatches from RandomState(seed); the course's layers draw dropout masks
from numpy's global RNG, which is seeded too, so that a seeded run is reproducible.
"""

from __future__ import annotations

from typing import Any

from cvlab.config.train import ModelConfig, OptimizerConfig, TrainConfig
from cvlab.data.constants import IMAGE_DATASETS
from cvlab.defaults import HYPERPARAMETERS
from cvlab.families import Announce, Build, Family, Prepared
from cvlab.validation import ConfigError
from cvlab.vocab import NUMPY_RULES

# The optimizer's and device's fields that only PyTorch uses; numpy runs on the CPU.
TORCH_ONLY = ("optimizer.nesterov", "optimizer.weight_decay", "optimizer.schedule",
              "optimizer.label_smoothing", "optimizer.grad_clip", "optimizer.warmup_frac",
              "optimizer.warmup_start", "optimizer.final_factor", "optimizer.step_epochs",
              "device.amp", "device.channels_last", "device.compile", "device.deterministic")

# Decoded datasets kept per process: the jobs of a parallel sweep run in a few reused
# worker processes, so each worker loads the data once.
_DATA_CACHE: dict[str, tuple[Any, dict[str, dict[str, Any]]]] = {}


def optim_config_of(optimizer: OptimizerConfig) -> dict[str, float]:
    """The update rule's hyperparameters from the optimizer section."""
    return {key: getattr(optimizer, key) for key in HYPERPARAMETERS[optimizer.name]}


class NumpyFamily(Family):
    name = "numpy"
    words = "numpy models"
    datasets = IMAGE_DATASETS
    unused_fields = TORCH_ONLY

    def check(self, cfg: TrainConfig) -> None:
        if cfg.device.name not in ("auto", "cpu"):  # numpy runs on the CPU: cpu is no change
            raise ConfigError("device.name", cfg.device.name, f"{self.words} (model.type="
                              f"{cfg.model.type}) do not use it; leave it at 'auto'")
        if cfg.optimizer.name not in NUMPY_RULES:
            raise ConfigError("optimizer.name", cfg.optimizer.name, "numpy models update with "
                              f"one of {', '.join(NUMPY_RULES)} ({cfg.optimizer.name} is for "
                              "PyTorch models)")

    def prepare(self, cfg: TrainConfig, model: ModelConfig, build: Build,
                announce: Announce) -> Prepared:
        """The data, the model (`build(model, input_shape, num_classes, rng)`) and the Solver's
        task; the images in the model's dtype where its schema has one, else float64."""
        import numpy as np

        from cvlab.data.load import cache_details
        from cvlab.layers import threads
        from cvlab.layers.fast import announce_fallback
        from cvlab.train.solver import Solver, SolverTask
        from cvlab.train.task import untrained_softmax_loss

        announce_fallback(announce)
        np.random.seed(cfg.seed)
        rng = np.random.RandomState(cfg.seed)
        splits = _splits(cfg, announce)
        net = build(model, tuple(int(d) for d in splits.X_train.shape[1:]), splits.num_classes,
                    rng)
        data = _course_data(splits, cfg, _params_dtype(net))
        solver = Solver(
            net, data, update_rule=cfg.optimizer.name, optim_config=optim_config_of(cfg.optimizer),
            lr_decay=cfg.optimizer.lr_decay, batch_size=cfg.batch_size, num_epochs=cfg.epochs,
            num_train_samples=cfg.train_eval_samples, num_val_samples=cfg.val_eval_samples,
            print_every=cfg.print_every, rng=rng,
        )
        task = SolverTask(solver)  # the course's Solver knows no untrained loss; the family does
        task.untrained_loss = untrained_softmax_loss(splits.num_classes)
        return Prepared(task=task, dataset=splits.name,
                        dataset_source=splits.source, device="cpu (numpy)",
                        settings={"num_train": int(data["X_train"].shape[0])},
                        details=cache_details(splits.info),
                        context=threads.use_threads(cfg.device.threads))


def _params_dtype(net: Any) -> Any:
    """The dtype the model computes in (its params'): the images are prepared in it."""
    import numpy as np

    return next(iter(net.params.values())).dtype if net.params else np.dtype(np.float64)


def _splits(cfg: TrainConfig, announce: Announce) -> Any:
    """The run's dataset cut into splits, kept per process (with its course data dicts)."""
    from cvlab.data import load_splits

    key = repr(cfg.dataset)
    if key not in _DATA_CACHE:
        splits = load_splits(cfg.dataset, announce=announce)
        _DATA_CACHE.clear()  # keep one dataset at a time
        _DATA_CACHE[key] = (splits, {})
    return _DATA_CACHE[key][0]


def _course_data(splits: Any, cfg: TrainConfig, dtype: Any) -> dict[str, Any]:
    """The course's data dict of `splits` in `dtype`, memoized with the splits."""
    from cvlab.data import preprocess

    prepared = _DATA_CACHE[repr(cfg.dataset)][1]
    if str(dtype) not in prepared:
        prepared[str(dtype)] = preprocess(splits, subtract_mean=cfg.dataset.subtract_mean,
                                          dtype=dtype)
    return prepared[str(dtype)]


NUMPY = NumpyFamily()
