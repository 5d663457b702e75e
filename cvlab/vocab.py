"""The words configs choose from, each list written once: the config schemas check against
them, and the code that acts on a choice (the optimizers, the augmentation, the networks)
refuses anything else with the same list. A leaf module: it imports nothing.
"""

from __future__ import annotations

DTYPES = ("float32", "float64")

# optimizers and schedules (numpy rules: cvlab.train.optim; torch: cvlab.train.torch_schedules)
NUMPY_RULES = ("sgd", "sgd_momentum", "rmsprop", "adam")
OPTIMIZERS = (*NUMPY_RULES, "adamw")
SCHEDULES = ("none", "step", "warmup_linear", "onecycle")

# where PyTorch runs and how
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("none", "bf16", "fp16")

# the numpy FullyConnectedNet's normalizations
NORMALIZATIONS = ("none", "batchnorm", "layernorm")

# the PyTorch classifiers: API level, augmentation, test-time augmentation
API_LEVELS = ("barebones", "module", "sequential")
FLIP_MODES = ("none", "random", "alternating")
PAD_MODES = ("reflect", "zeros")
TTA_LEVELS = ("none", "flip", "flip_translate")

# the captioner's recurrent cell
CELL_TYPES = ("rnn", "lstm")

# `cvlab eval`: which split and which saved weights
EVAL_SPLITS = ("val", "test")
WEIGHT_CHOICES = ("best", "last")
