"""First-order update rules for the numpy models (the course's optim.py).

Every rule has the signature `rule(w, dw, config) -> (next_w, config)`:
    w       array of any shape: the current weights
    dw      array shaped like w: the gradient of the loss with respect to w
    config  dict of hyperparameters and of the rule's state (velocity, moments, ...);
            missing keys are filled with the course's defaults on the first call.
The rules are pure functions of their inputs: the returned config is a new dict and the
input arrays are not modified. Rules are looked up by name in UPDATE_RULES (`get_update_rule`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Config = dict[str, Any]
UpdateRule = Callable[[np.ndarray, np.ndarray, Config | None], tuple[np.ndarray, Config]]


def _with_defaults(config: Config | None, **defaults: Any) -> Config:
    """A copy of `config` with each missing key set to its default."""
    merged = dict(config) if config is not None else {}
    for key, value in defaults.items():
        merged.setdefault(key, value)
    return merged


def sgd(w: np.ndarray, dw: np.ndarray, config: Config | None = None) -> tuple[np.ndarray, Config]:
    """Vanilla stochastic gradient descent: w - learning_rate * dw.

    config: learning_rate (1e-2).
    """
    config = _with_defaults(config, learning_rate=1e-2)
    next_w = w - config["learning_rate"] * dw
    return next_w, config


def sgd_momentum(
    w: np.ndarray, dw: np.ndarray, config: Config | None = None
) -> tuple[np.ndarray, Config]:
    """SGD with momentum: v = momentum * v - learning_rate * dw; w + v.

    config: learning_rate (1e-2), momentum (0.9), velocity (zeros like w).
    """
    config = _with_defaults(config, learning_rate=1e-2, momentum=0.9)
    velocity = config.get("velocity")
    if velocity is None:
        velocity = np.zeros_like(w)
    velocity = config["momentum"] * velocity - config["learning_rate"] * dw
    next_w = w + velocity
    config["velocity"] = velocity
    return next_w, config


def rmsprop(
    w: np.ndarray, dw: np.ndarray, config: Config | None = None
) -> tuple[np.ndarray, Config]:
    """RMSProp: a moving average of squared gradients scales each step.

    config: learning_rate (1e-2), decay_rate (0.99), epsilon (1e-8), cache (zeros like w).
    """
    config = _with_defaults(config, learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8)
    cache = config.get("cache")
    if cache is None:
        cache = np.zeros_like(w)
    decay = config["decay_rate"]
    cache = decay * cache + (1 - decay) * dw * dw
    next_w = w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"])
    config["cache"] = cache
    return next_w, config


def adam(w: np.ndarray, dw: np.ndarray, config: Config | None = None) -> tuple[np.ndarray, Config]:
    """Adam with bias correction; `t` is incremented before the correction.

    config: learning_rate (1e-3), beta1 (0.9), beta2 (0.999), epsilon (1e-8),
    m and v (zeros like w), t (0).
    """
    config = _with_defaults(config, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, t=0)
    m = config.get("m")
    v = config.get("v")
    if m is None:
        m = np.zeros_like(w)
    if v is None:
        v = np.zeros_like(w)
    beta1, beta2 = config["beta1"], config["beta2"]
    t = config["t"] + 1
    # m = beta1 * m + (1 - beta1) * dw and v = beta2 * v + (1 - beta2) * dw**2, then
    # next_w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon) with the bias-corrected
    # m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t); written with few temporaries
    # (new arrays only: the inputs are not modified).
    m = m * beta1
    m += (1 - beta1) * dw
    v = v * beta2
    v += (1 - beta2) * (dw * dw)
    denominator = np.sqrt(v * (1 / (1 - beta2**t)))
    denominator += config["epsilon"]
    step = np.divide(m, denominator, out=denominator)
    step *= config["learning_rate"] / (1 - beta1**t)
    next_w = w - step
    config.update(m=m, v=v, t=t)
    return next_w, config


UPDATE_RULES: dict[str, UpdateRule] = {
    "sgd": sgd,
    "sgd_momentum": sgd_momentum,
    "rmsprop": rmsprop,
    "adam": adam,
}

# Hyperparameter keys each rule reads (the rest of an optimizer config is ignored by it).
HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    "sgd": ("learning_rate",),
    "sgd_momentum": ("learning_rate", "momentum"),
    "rmsprop": ("learning_rate", "decay_rate", "epsilon"),
    "adam": ("learning_rate", "beta1", "beta2", "epsilon"),
}


def apply_updates(params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                  configs: dict[str, Config], rule: UpdateRule) -> None:
    """One update of every parameter: params[name], configs[name] = rule(w, grads[name], ...)."""
    for name, w in params.items():
        params[name], configs[name] = rule(w, grads[name], configs[name])


def get_update_rule(name: str | UpdateRule) -> UpdateRule:
    """The rule called `name` (a callable is returned as is); unknown names raise ValueError."""
    if callable(name):
        return name
    try:
        return UPDATE_RULES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown update rule {name!r}; valid rules: {', '.join(UPDATE_RULES)}"
        ) from None
