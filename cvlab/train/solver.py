"""The course's Solver: minibatch training of a numpy model with an update rule from optim.py.

    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    lr_decay=0.95, batch_size=50, num_epochs=10, print_every=100)
    solver.train()

`model` is a Model: a dict `params` (name -> array), the names of its buffers (state outside
params, such as batchnorm's running statistics) and `loss(X, y=None)`: scores (N, C) when y is
None, else (loss, grads) with grads shaped like params. `data` is a dict with X_train,
y_train, X_val, y_val (X of shape (N, ...), y of shape (N,)).

Course semantics: minibatches are drawn with replacement (`choice(N, batch_size)`),
iterations_per_epoch = max(N // batch_size, 1), the learning rate is multiplied by lr_decay
at each epoch end, accuracy is checked at the first iteration, at each epoch end and at the
last iteration, and the params with the best validation accuracy are restored at the end.
The loop itself is cvlab's one training loop (cvlab.train.core) driving a SolverTask; the
histories, the best validation accuracy and the best params are the loop's records.

cvlab additions (keyword arguments): `rng` for minibatch sampling (default: numpy's global
RNG, as in the course), `progress` (a progress bar), `printer` and `iteration_printer` (where
verbose lines go), `stop_on_divergence` (a non-finite loss, or one above 1000 x the first,
stops training and sets `diverged`) and `description` (the progress bar's label).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cvlab.defaults import SOLVER
from cvlab.layers import threads
from cvlab.records.files import CHECKPOINT_NAME
from cvlab.train.core import LoopOptions, LoopResult, Records, run_loop
from cvlab.train.optim import apply_updates, get_update_rule
from cvlab.train.task import Task, Weights

DEFAULTS: dict[str, Any] = {
    **SOLVER,
    # cvlab additions
    "rng": None,
    "progress": False,
    "printer": None,
    "iteration_printer": None,
    "stop_on_divergence": True,
    "description": "train",
}


class Model(Protocol):
    """What the Solver trains (the course's model API).

    params   name -> array: everything the update rule changes
    buffers  default (): names of the attributes that hold the rest of the model's state
             (FullyConnectedNet: bn_params, the running statistics, and dropout_param);
             checkpoints and weights files carry them. A course-style model that does not
             declare the member has none.
    """

    params: dict[str, np.ndarray]
    buffers: tuple[str, ...] = ()

    def loss(self, X: np.ndarray, y: np.ndarray | None = None) -> Any:
        """Scores (N, C) when y is None; else (loss, grads shaped like params)."""
        ...


def model_buffers(model: Model) -> dict[str, Any]:
    """A copy of each buffer the model declares."""
    names = getattr(model, "buffers", Model.buffers)  # the Protocol's default for plain models
    return {name: copy.deepcopy(getattr(model, name)) for name in names}


def model_weights(model: Model) -> Weights:
    """A copy of the model's whole state: {"params": ..., "buffers": ...}."""
    return {"params": {k: v.copy() for k, v in model.params.items()},
            "buffers": model_buffers(model)}


def load_model_weights(model: Model, weights: Weights) -> None:
    """Put model_weights() back; ValueError when a param is missing or shaped otherwise."""
    params = weights["params"]
    for name, value in model.params.items():
        if name not in params or params[name].shape != value.shape:
            raise ValueError(f"the saved weights have no {name} of shape {value.shape}")
    model.params = {name: np.array(params[name], dtype=value.dtype)
                    for name, value in model.params.items()}
    declared = set(model_buffers(model))
    for name, value in weights.get("buffers", {}).items():
        if name not in declared:
            raise ValueError(f"the saved weights have a buffer {name!r} the model does not "
                             f"declare (it declares {sorted(declared) or 'none'})")
        setattr(model, name, copy.deepcopy(value))


class Solver:
    """Trains `model` on `data`; see the module docstring for the keyword arguments."""

    def __init__(self, model: Model, data: dict[str, np.ndarray], **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(DEFAULTS))
        if unknown:
            raise ValueError(
                f"unrecognized arguments {', '.join(unknown)}; valid: {', '.join(DEFAULTS)}"
            )
        options = {**DEFAULTS, **kwargs}
        self.model = model
        self.data = data
        self.X_train, self.y_train = data["X_train"], data["y_train"]
        self.X_val, self.y_val = data["X_val"], data["y_val"]

        self.update_rule_name = options["update_rule"]
        self.update_rule = get_update_rule(options["update_rule"])
        self.optim_config: dict[str, Any] = dict(options["optim_config"] or {})
        self.lr_decay: float = options["lr_decay"]
        self.batch_size: int = options["batch_size"]
        self.num_epochs: int = options["num_epochs"]
        self.num_train_samples: int | None = options["num_train_samples"]
        self.num_val_samples: int | None = options["num_val_samples"]
        self.checkpoint_name: str | None = options["checkpoint_name"]
        self.print_every: int = options["print_every"]
        self.verbose: bool = options["verbose"]

        self.rng = options["rng"] if options["rng"] is not None else np.random
        self.progress: bool = options["progress"]
        self.printer = options["printer"] or print
        self.iteration_printer = options["iteration_printer"]
        self.stop_on_divergence: bool = options["stop_on_divergence"]
        self.description: str = options["description"]
        self._reset()

    def _reset(self) -> None:
        """Book-keeping variables; called by the constructor, not by users."""
        self.epoch = 0
        self.iteration = 0  # completed updates
        # The course's histories and best model: filled from the loop's records by train().
        self.best_val_acc = 0.0
        self.best_params: dict[str, np.ndarray] = {}
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.diverged = False
        self._resumed_loop: dict[str, Any] | None = None
        # Each parameter gets its own copy of the optimizer config.
        self.optim_configs = {name: dict(self.optim_config) for name in self.model.params}

    @property
    def iterations_per_epoch(self) -> int:
        return max(self.X_train.shape[0] // self.batch_size, 1)

    def learning_rate(self) -> float | None:
        """The current learning rate (as decayed so far), when the config sets one."""
        for config in self.optim_configs.values():
            if "learning_rate" in config:
                return float(config["learning_rate"])
        return self.optim_config.get("learning_rate")

    def _step(self) -> float:
        """One gradient update on a minibatch drawn with replacement; returns the loss.

        A non-finite loss is recorded but not applied (the run is about to stop)."""
        num_train = self.X_train.shape[0]
        batch_mask = self.rng.choice(num_train, self.batch_size)
        X_batch = self.X_train[batch_mask]
        y_batch = self.y_train[batch_mask]

        loss, grads = self.model.loss(X_batch, y_batch)
        loss = float(loss)
        if self.stop_on_divergence and not np.isfinite(loss):
            return loss
        apply_updates(self.model.params, grads, self.optim_configs, self.update_rule)
        return loss

    def check_accuracy(
        self, X: np.ndarray, y: np.ndarray, num_samples: int | None = None, batch_size: int = 100
    ) -> float:
        """Accuracy of the model on (X, y), on a random subsample of `num_samples` if given."""
        N = X.shape[0]
        if num_samples is not None and N > num_samples:
            mask = self.rng.choice(N, num_samples)
            N = num_samples
            X = X[mask]
            y = y[mask]
        num_batches = N // batch_size + (1 if N % batch_size else 0)
        y_pred = []
        for i in range(num_batches):
            scores = self.model.loss(X[i * batch_size:(i + 1) * batch_size])
            y_pred.append(np.argmax(scores, axis=1))
        if not y_pred:
            return 0.0
        return float(np.mean(np.hstack(y_pred) == y))

    def _check(self) -> tuple[float, float]:
        """The course's check: train and val accuracy (on their subsamples)."""
        train_acc = self.check_accuracy(self.X_train, self.y_train,
                                        num_samples=self.num_train_samples)
        val_acc = self.check_accuracy(self.X_val, self.y_val, num_samples=self.num_val_samples)
        if self.checkpoint_name is not None:  # the course's checkpoint at each check
            from cvlab.records.state import save_state

            save_state(Path(f"{self.checkpoint_name}_epoch_{self.epoch}.npz"), self.state())
        return train_acc, val_acc

    def _end_epoch(self) -> None:
        """Epoch count and learning-rate decay."""
        self.epoch += 1
        for config in self.optim_configs.values():
            if "learning_rate" in config:
                config["learning_rate"] *= self.lr_decay

    # ---- training state --------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything needed to continue training exactly from here (arrays, numbers, RNG
        states: what cvlab.records.state stores); the histories are the loop's."""
        return {
            "params": {k: v.copy() for k, v in self.model.params.items()},
            "model_buffers": model_buffers(self.model),
            "optim_configs": copy.deepcopy(self.optim_configs),
            "update_rule": self.update_rule_name if isinstance(self.update_rule_name, str)
            else getattr(self.update_rule_name, "__name__", "custom"),
            "batch_size": self.batch_size,
            "num_train": int(self.X_train.shape[0]),
            "epoch": self.epoch,
            "iteration": self.iteration,
            "rng_state": _rng_state(self.rng),
            "global_rng_state": np.random.get_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a state from `state()`; ValueError when it does not fit this solver."""
        _check_fits(state, self)
        load_model_weights(self.model, {"params": state["params"],
                                        "buffers": state["model_buffers"]})
        self.optim_configs = copy.deepcopy(state["optim_configs"])
        self.epoch = int(state["epoch"])
        self.iteration = int(state["iteration"])
        _set_rng_state(self.rng, state["rng_state"])
        np.random.set_state(state["global_rng_state"])

    def resume(self, path: Path) -> None:
        """Load the training state of a run folder's checkpoint.npz (or of that file); the
        next train() continues it."""
        from cvlab.records.state import load_state

        path = Path(path)
        tree = load_state(path / CHECKPOINT_NAME if path.is_dir() else path)
        self.load_state(tree["task"])
        self._resumed_loop = tree["loop"]

    # ---- training ----------------------------------------------------------------------------

    def train(self, records: Records | None = None) -> None:
        """Run the optimization (from the start, or from a resumed state); `records` (cvlab)
        writes metrics.csv and epoch-end checkpoints into a run folder."""
        options = LoopOptions(
            print_every=self.print_every, verbose=self.verbose, progress=self.progress,
            description=self.description, stop_on_divergence=self.stop_on_divergence,
            printer=self.printer, iteration_printer=self.iteration_printer,
        )
        resumed, self._resumed_loop = self._resumed_loop, None
        self.take_records(run_loop(SolverTask(self), options, records, resumed))

    def take_records(self, result: LoopResult) -> None:
        """The course's attributes from the loop's records: histories, best accuracy and
        params, and whether the run diverged."""
        self.loss_history = list(result.losses)
        self.train_acc_history = list(result.history.get("train_acc", []))
        self.val_acc_history = list(result.history.get("val_acc", []))
        self.best_val_acc = result.best.get("val_acc", 0.0)
        best = result.best_weights
        self.best_params = {k: v.copy() for k, v in best["params"].items()} if best else {}
        self.diverged = result.status == "diverged"


class SolverTask(Task):
    """The Solver as a Task of the loop: the course's steps, checks and decay, and the best
    params restored at the end. Its test split is the data's X_test / y_test when given."""

    metric_columns = ("train_acc", "val_acc")
    best_metric = "val_acc"
    restores_best = True
    best_of = ("train_acc", "val_acc")

    def __init__(self, solver: Solver) -> None:
        self.solver = solver
        self.num_epochs = solver.num_epochs
        self.iterations_per_epoch = solver.iterations_per_epoch
        self.examples_per_update = solver.batch_size

    @property
    def iteration(self) -> int:
        return self.solver.iteration

    @property
    def epoch(self) -> int:
        return self.solver.epoch

    def step(self) -> float:
        # Diverging runs overflow on purpose; the loop reports the non-finite loss once.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            loss = self.solver._step()
        self.solver.iteration += 1
        return loss

    def learning_rate(self) -> float | None:
        return self.solver.learning_rate()

    def end_epoch(self) -> None:
        self.solver._end_epoch()

    def should_evaluate(self, epoch_end: bool) -> bool:
        return epoch_end or self.solver.iteration == 1

    def evaluate(self) -> dict[str, float]:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            train_acc, val_acc = self.solver._check()
        return {"train_acc": train_acc, "val_acc": val_acc}

    def describe(self, metrics: dict[str, float]) -> str:
        return (f"(Epoch {self.solver.epoch} / {self.solver.num_epochs}) train acc: "
                f"{metrics['train_acc']:f}; val_acc: {metrics['val_acc']:f}")

    def state(self) -> dict[str, Any]:
        return self.solver.state()

    def load_state(self, state: dict[str, Any]) -> None:
        self.solver.load_state(state)

    def weights(self) -> Weights:
        return model_weights(self.solver.model)

    def load_weights(self, weights: Weights) -> None:
        load_model_weights(self.solver.model, weights)

    def restore_best(self, weights: Weights) -> None:
        """The course swaps the best params into the model; its buffers stay as they are."""
        self.solver.model.params = {k: v.copy() for k, v in weights["params"].items()}

    def evaluate_split(self, split: str) -> dict[str, float]:
        X, y = self.solver.data[f"X_{split}"], self.solver.data[f"y_{split}"]
        with np.errstate(over="ignore", invalid="ignore"):
            return {f"{split}_acc": self.solver.check_accuracy(X, y)}

    def scale_learning_rate(self, factor: float) -> None:
        for config in self.solver.optim_configs.values():
            if "learning_rate" in config:
                config["learning_rate"] *= factor

    def extra_metrics(self) -> dict[str, Any]:
        """The threads the layers used (their threading policy in force, or None)."""
        return {"blas_threads": threads.configured()}


def _check_fits(state: dict[str, Any], solver: Solver) -> None:
    params = solver.model.params
    if set(state["params"]) != set(params):
        raise ValueError(f"the checkpoint's params {sorted(state['params'])} are not the "
                         f"model's {sorted(params)}")
    for name, value in state["params"].items():
        if value.shape != params[name].shape or value.dtype != params[name].dtype:
            raise ValueError(f"the checkpoint's {name} is {value.dtype}{list(value.shape)}, the "
                             f"model's {params[name].dtype}{list(params[name].shape)}")
    if state["batch_size"] != solver.batch_size or state["num_train"] != solver.X_train.shape[0]:
        raise ValueError(
            f"the checkpoint was written with batch_size={state['batch_size']} and "
            f"{state['num_train']} training images; this run has batch_size="
            f"{solver.batch_size} and {solver.X_train.shape[0]}"
        )


def _rng_state(rng: Any) -> Any:
    if isinstance(rng, np.random.Generator):
        return copy.deepcopy(rng.bit_generator.state)
    return rng.get_state()  # a RandomState, or numpy's global one (np.random)


def _set_rng_state(rng: Any, state: Any) -> None:
    if isinstance(rng, np.random.Generator):
        rng.bit_generator.state = state
    else:
        rng.set_state(state)
