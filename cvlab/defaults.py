"""The course's defaults, written once: the Solver's keyword arguments and each update rule's
hyperparameters. The Solver and the update rules (cvlab.train) use them as their defaults; the
config schemas (cvlab.config.train) use them as the defaults of `cvlab train`. A leaf module, so
that composing a config imports no training code.
"""

from __future__ import annotations

from typing import Any

# The course Solver's keyword arguments and their defaults.
SOLVER: dict[str, Any] = {
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
}

# Each update rule's hyperparameters (and Adam's step count t), as the course's optim.py fills
# them in on the first call.
UPDATE_RULES: dict[str, dict[str, Any]] = {
    "sgd": {"learning_rate": 1e-2},
    "sgd_momentum": {"learning_rate": 1e-2, "momentum": 0.9},
    "rmsprop": {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8},
    "adam": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "t": 0},
}

# The hyperparameter keys each rule reads from a config (its state keys excluded).
HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    name: tuple(key for key in defaults if key != "t") for name, defaults in UPDATE_RULES.items()
}

# The course's CaptioningRNN constructor (its notebook trains wordvec 256 / hidden 512).
CAPTIONING_RNN: dict[str, Any] = {"input_dim": 512, "wordvec_dim": 128, "hidden_dim": 128,
                                  "cell_type": "rnn"}
