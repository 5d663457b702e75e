"""The course's Solver: minibatch training of a numpy model with an update rule from optim.py.

    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    lr_decay=0.95, batch_size=50, num_epochs=10, print_every=100)
    solver.train()

`model` has a dict `params` (name -> array) and `loss(X, y=None)`: scores (N, C) when y is
None, else (loss, grads) with grads shaped like params. `data` is a dict with X_train,
y_train, X_val, y_val (X of shape (N, ...), y of shape (N,)).

Course semantics: minibatches are drawn with replacement (`choice(N, batch_size)`),
iterations_per_epoch = max(N // batch_size, 1), the learning rate is multiplied by lr_decay
at each epoch end, accuracy is checked at the first iteration, at each epoch end and at the
last iteration, and the params with the best validation accuracy are restored at the end.

cvlab additions (keyword arguments): `rng` for minibatch sampling (default: numpy's global
RNG, as in the course), `logger` (a cvlab.runs.MetricsLogger), `progress`, `checkpoint_dir`
(a checkpoint at each epoch end, see `resume`), `on_checkpoint` (a hook called after each
checkpoint), `printer` and `iteration_printer` (where verbose lines go) and
`stop_on_divergence` (a non-finite loss stops training and sets `diverged`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.progress import ProgressReporter
from cvlab.train import checkpoint as ckpt
from cvlab.train.optim import get_update_rule

# Attributes of a model that hold state outside `params` (batchnorm running statistics,
# the dropout parameter); they are saved with the checkpoint.
MODEL_BUFFERS = ("bn_params", "dropout_param")

METRIC_COLUMNS = ("iteration", "epoch", "loss", "train_acc", "val_acc", "lr", "elapsed_s")

DEFAULTS: dict[str, Any] = {
    "update_rule": "sgd",
    "optim_config": None,
    "lr_decay": 1.0,
    "batch_size": 100,
    "num_epochs": 10,
    "num_train_samples": 1000,
    "num_val_samples": None,
    "checkpoint_name": None,
    "print_every": 10,
    "verbose": True,
    # cvlab additions
    "rng": None,
    "logger": None,
    "progress": False,
    "checkpoint_dir": None,
    "on_checkpoint": None,
    "printer": None,
    "iteration_printer": None,
    "stop_on_divergence": True,
    "description": "train",
}


def _rng_state(rng: Any) -> Any:
    if hasattr(rng, "get_state"):
        return rng.get_state()
    return copy.deepcopy(rng.bit_generator.state)


def _set_rng_state(rng: Any, state: Any) -> None:
    if hasattr(rng, "set_state"):
        rng.set_state(state)
    else:
        rng.bit_generator.state = state


class Solver:
    """Trains `model` on `data`; see the module docstring for the keyword arguments."""

    def __init__(self, model: Any, data: dict[str, np.ndarray], **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(DEFAULTS))
        if unknown:
            raise ValueError(
                f"unrecognized arguments {', '.join(unknown)}; valid: {', '.join(DEFAULTS)}"
            )
        options = {**DEFAULTS, **kwargs}
        self.model = model
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
        self.logger = options["logger"]
        self.progress: bool = options["progress"]
        self.checkpoint_dir = Path(options["checkpoint_dir"]) if options["checkpoint_dir"] else None
        self.on_checkpoint: Callable[[Solver], None] | None = options["on_checkpoint"]
        self.printer: Callable[[str], None] = options["printer"] or print
        self.iteration_printer: Callable[[str], None] = options["iteration_printer"] or self.printer
        self.stop_on_divergence: bool = options["stop_on_divergence"]
        self.description: str = options["description"]
        self._reset()

    def _reset(self) -> None:
        """Book-keeping variables; called by the constructor, not by users."""
        self.epoch = 0
        self.iteration = 0  # completed updates
        self.best_val_acc = 0.0
        self.best_params: dict[str, np.ndarray] = {}
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.diverged = False
        self.elapsed_s = 0.0
        # Each parameter gets its own copy of the optimizer config.
        self.optim_configs = {name: dict(self.optim_config) for name in self.model.params}

    @property
    def iterations_per_epoch(self) -> int:
        return max(self.X_train.shape[0] // self.batch_size, 1)

    @property
    def num_iterations(self) -> int:
        return self.num_epochs * self.iterations_per_epoch

    def learning_rate(self) -> float | None:
        """The current learning rate (as decayed so far), when the config sets one."""
        for config in self.optim_configs.values():
            if "learning_rate" in config:
                return float(config["learning_rate"])
        return self.optim_config.get("learning_rate")

    def _step(self) -> float:
        """One gradient update on a minibatch drawn with replacement; returns the loss."""
        num_train = self.X_train.shape[0]
        batch_mask = self.rng.choice(num_train, self.batch_size)
        X_batch = self.X_train[batch_mask]
        y_batch = self.y_train[batch_mask]

        loss, grads = self.model.loss(X_batch, y_batch)
        loss = float(loss)
        self.loss_history.append(loss)
        if self.stop_on_divergence and not np.isfinite(loss):
            return loss
        for name, w in self.model.params.items():
            next_w, next_config = self.update_rule(w, grads[name], self.optim_configs[name])
            self.model.params[name] = next_w
            self.optim_configs[name] = next_config
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

    # ---- checkpoints -------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything needed to continue training exactly from here."""
        buffers = {name: copy.deepcopy(getattr(self.model, name))
                   for name in MODEL_BUFFERS if hasattr(self.model, name)}
        return {
            "params": {k: v.copy() for k, v in self.model.params.items()},
            "model_buffers": buffers,
            "optim_configs": copy.deepcopy(self.optim_configs),
            "update_rule": self.update_rule_name if isinstance(self.update_rule_name, str)
            else getattr(self.update_rule_name, "__name__", "custom"),
            "batch_size": self.batch_size,
            "num_train": int(self.X_train.shape[0]),
            "epoch": self.epoch,
            "iteration": self.iteration,
            "loss_history": list(self.loss_history),
            "train_acc_history": list(self.train_acc_history),
            "val_acc_history": list(self.val_acc_history),
            "best_val_acc": self.best_val_acc,
            "best_params": {k: v.copy() for k, v in self.best_params.items()},
            "rng_state": _rng_state(self.rng),
            "global_rng_state": np.random.get_state(),
            "elapsed_s": self.elapsed_s,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a state from `state()` (the model must have the same architecture)."""
        if set(state["params"]) != set(self.model.params):
            raise ValueError(
                f"checkpoint params {sorted(state['params'])} do not match the model's "
                f"{sorted(self.model.params)}"
            )
        for name, value in state["params"].items():
            if value.shape != self.model.params[name].shape:
                raise ValueError(f"checkpoint param {name} has shape {value.shape}, "
                                 f"the model's is {self.model.params[name].shape}")
        if state["batch_size"] != self.batch_size or state["num_train"] != self.X_train.shape[0]:
            raise ValueError(
                f"checkpoint was written with batch_size={state['batch_size']} and "
                f"{state['num_train']} training images; this solver has "
                f"batch_size={self.batch_size} and {self.X_train.shape[0]}"
            )
        self.model.params = {k: v.copy() for k, v in state["params"].items()}
        for name, value in state["model_buffers"].items():
            setattr(self.model, name, copy.deepcopy(value))
        self.optim_configs = copy.deepcopy(state["optim_configs"])
        self.epoch = state["epoch"]
        self.iteration = state["iteration"]
        self.loss_history = list(state["loss_history"])
        self.train_acc_history = list(state["train_acc_history"])
        self.val_acc_history = list(state["val_acc_history"])
        self.best_val_acc = state["best_val_acc"]
        self.best_params = {k: v.copy() for k, v in state["best_params"].items()}
        _set_rng_state(self.rng, state["rng_state"])
        np.random.set_state(state["global_rng_state"])
        self.elapsed_s = state.get("elapsed_s", 0.0)

    def resume(self, path: Path) -> None:
        """Load the checkpoint of an earlier run (its folder or checkpoint file).

        A following `train()` continues from the saved iteration and, with the same data
        and settings, ends with the same params and histories as an uninterrupted run.
        """
        self.load_state(ckpt.load_checkpoint(Path(path)))

    def _save_checkpoint(self) -> None:
        if self.checkpoint_dir is not None:
            ckpt.save_checkpoint(self.checkpoint_dir / ckpt.CHECKPOINT_NAME, self.state())
        if self.checkpoint_name is not None:  # the course's per-epoch pickle
            ckpt.save_checkpoint(
                Path(f"{self.checkpoint_name}_epoch_{self.epoch}.pkl"), self.state()
            )
        if self.on_checkpoint is not None:
            self.on_checkpoint(self)

    # ---- training ----------------------------------------------------------------------

    def _say(self, line: str) -> None:
        if self.verbose:
            self.printer(line)

    def train(self) -> None:
        """Run the optimization (from the start, or from the state a resume loaded)."""
        num_iterations = self.num_iterations
        iterations_per_epoch = self.iterations_per_epoch
        start = time.perf_counter() - self.elapsed_s
        reporter = ProgressReporter(
            num_iterations, self.description, enabled=self.progress, printer=self.printer
        )
        # Diverging runs overflow on purpose; the non-finite loss is reported once, below.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"), \
                reporter:
            reporter.advance(self.iteration)
            for t in range(self.iteration, num_iterations):
                loss = self._step()
                self.iteration = t + 1
                if self.verbose and t % self.print_every == 0:
                    self.iteration_printer(f"(Iteration {t + 1} / {num_iterations}) loss: {loss:f}")

                if self.stop_on_divergence and not np.isfinite(loss):
                    self.diverged = True
                    self.elapsed_s = time.perf_counter() - start
                    self._log(t, loss)
                    self.printer(f"loss is {loss} at iteration {t + 1}: the run diverged; "
                                 "stopping")
                    break

                epoch_end = (t + 1) % iterations_per_epoch == 0
                if epoch_end:
                    self.epoch += 1
                    for config in self.optim_configs.values():
                        if "learning_rate" in config:
                            config["learning_rate"] *= self.lr_decay

                check = t == 0 or t == num_iterations - 1 or epoch_end
                train_acc = val_acc = None
                if check:
                    train_acc = self.check_accuracy(
                        self.X_train, self.y_train, num_samples=self.num_train_samples
                    )
                    val_acc = self.check_accuracy(
                        self.X_val, self.y_val, num_samples=self.num_val_samples
                    )
                    self.train_acc_history.append(train_acc)
                    self.val_acc_history.append(val_acc)
                    self._say(f"(Epoch {self.epoch} / {self.num_epochs}) train acc: "
                              f"{train_acc:f}; val_acc: {val_acc:f}")
                    if val_acc > self.best_val_acc or not self.best_params:
                        self.best_val_acc = max(val_acc, self.best_val_acc)
                        self.best_params = {k: v.copy() for k, v in self.model.params.items()}
                self.elapsed_s = time.perf_counter() - start
                self._log(t, loss, train_acc, val_acc)
                fields: dict[str, object] = {"loss": loss}
                if val_acc is not None:
                    fields.update(train_acc=train_acc, val_acc=val_acc)
                reporter.advance(1, **fields)
                if epoch_end:
                    self._save_checkpoint()

        # At the end of training swap the best params into the model.
        if self.best_params:
            self.model.params = {k: v.copy() for k, v in self.best_params.items()}

    def _log(self, t: int, loss: float, train_acc: float | None = None,
             val_acc: float | None = None) -> None:
        if self.logger is None:
            return
        self.logger.log(iteration=t + 1, epoch=self.epoch, loss=loss, train_acc=train_acc,
                        val_acc=val_acc, lr=self.learning_rate(),
                        elapsed_s=round(self.elapsed_s, 4))
