"""First-order update rules for the numpy models (the course's optim.py).

Every rule has the signature `rule(w, dw, config) -> (next_w, config)`:
    w       array of any shape: the current weights
    dw      array shaped like w: the gradient of the loss with respect to w
    config  dict of hyperparameters and of the rule's state (velocity, moments, ...);
            missing keys are filled with the course's defaults on the first call.
The rules are pure functions of their inputs: the returned config is a new dict and the
input arrays are not modified. Rules are looked up by name in UPDATE_RULES (`get_update_rule`).

Trainers update all their parameters with `apply_updates(params, grads, configs, rule)`: for
the rules of UPDATE_RULES on float32/float64 arrays it updates the weights and the rule's state
arrays in place, in one pass over memory, split between the threads of the layers' threading
policy (cvlab.layers.threads); the numbers are those of the pure rule, bit for bit (the same
IEEE operations in the same order and precision; tests/test_optim_inplace.py proves it).
Anything else (another rule, other dtypes, numpy-scalar hyperparameters) goes through the pure
rule.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from cvlab.defaults import UPDATE_RULES as DEFAULTS

Config = dict[str, Any]
UpdateRule = Callable[[np.ndarray, np.ndarray, Config | None], tuple[np.ndarray, Config]]


def _with_defaults(config: Config | None, rule: str) -> Config:
    """A copy of `config` with each missing key set to the rule's default."""
    merged = dict(config) if config is not None else {}
    for key, value in DEFAULTS[rule].items():
        merged.setdefault(key, value)
    return merged


def sgd(w: np.ndarray, dw: np.ndarray, config: Config | None = None) -> tuple[np.ndarray, Config]:
    """Vanilla stochastic gradient descent: w - learning_rate * dw.

    config: learning_rate (1e-2).
    """
    config = _with_defaults(config, "sgd")
    next_w = w - config["learning_rate"] * dw
    return next_w, config


def sgd_momentum(
    w: np.ndarray, dw: np.ndarray, config: Config | None = None
) -> tuple[np.ndarray, Config]:
    """SGD with momentum: v = momentum * v - learning_rate * dw; w + v.

    config: learning_rate (1e-2), momentum (0.9), velocity (zeros like w).
    """
    config = _with_defaults(config, "sgd_momentum")
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
    config = _with_defaults(config, "rmsprop")
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
    config = _with_defaults(config, "adam")
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


# ---- the in-place fast path ------------------------------------------------------------------

# The state arrays each rule keeps in its config.
STATE_KEYS: dict[str, tuple[str, ...]] = {
    "sgd": (), "sgd_momentum": ("velocity",), "rmsprop": ("cache",), "adam": ("m", "v"),
}
# Arrays are updated in parts of this many elements, claimed by the policy's threads.
PART_SIZE = 1 << 16


def _kernels() -> Any:
    """cvlab.ext.update when built, else the numpy kernels below (same results)."""
    if not _loaded:
        try:
            from cvlab.ext import update
        except ImportError:
            update = None
        _loaded.append(update)
    return _loaded[0]


_loaded: list = []


def _python_number(value: Any) -> bool:
    # numpy scalars are not: numpy would compute with them in their own precision
    return type(value) in (int, float)


def _in_place_ready(name: str, w: Any, dw: Any, config: Config) -> bool:
    """Whether the in-place kernels compute exactly what the pure rule would."""
    if not (isinstance(w, np.ndarray) and isinstance(dw, np.ndarray)):
        return False
    if w.dtype not in (np.float32, np.float64) or dw.dtype != w.dtype or dw.shape != w.shape:
        return False
    # w must be an array of its own: a view would change the array it views
    if not (w.flags.c_contiguous and w.flags.writeable and w.base is None
            and dw.flags.c_contiguous):
        return False
    if not all(_python_number(config[key]) for key in DEFAULTS[name]):
        return False
    for key in STATE_KEYS[name]:
        state = config.get(key)
        if state is not None and not (
                isinstance(state, np.ndarray) and state.dtype == w.dtype
                and state.shape == w.shape and state.flags.c_contiguous
                and state.flags.writeable and state.base is None):
            return False
    return True


def _numpy_update(name: str, w: np.ndarray, dw: np.ndarray, state: list[np.ndarray],
                  args: tuple) -> None:
    """The in-place update with numpy ufuncs (out=): the pure rule's operations, one by one."""
    scratch = np.empty_like(w)
    if name == "sgd":
        (learning_rate,) = args
        np.multiply(dw, learning_rate, out=scratch)
        np.subtract(w, scratch, out=w)
    elif name == "sgd_momentum":
        (velocity,), (momentum, learning_rate) = state, args
        np.multiply(velocity, momentum, out=velocity)
        np.multiply(dw, learning_rate, out=scratch)
        np.subtract(velocity, scratch, out=velocity)
        np.add(w, velocity, out=w)
    elif name == "rmsprop":
        (cache,), (decay, rest, learning_rate, epsilon) = state, args
        np.multiply(cache, decay, out=cache)
        np.multiply(dw, rest, out=scratch)
        np.multiply(scratch, dw, out=scratch)
        np.add(cache, scratch, out=cache)
        root = np.sqrt(cache)
        root += epsilon
        np.multiply(dw, learning_rate, out=scratch)
        np.divide(scratch, root, out=scratch)
        np.subtract(w, scratch, out=w)
    else:
        (m, v), (beta1, rest1, beta2, rest2, v_correction, epsilon, step_size) = state, args
        np.multiply(m, beta1, out=m)
        np.multiply(dw, rest1, out=scratch)
        np.add(m, scratch, out=m)
        np.multiply(v, beta2, out=v)
        np.multiply(dw, dw, out=scratch)
        np.multiply(scratch, rest2, out=scratch)
        np.add(v, scratch, out=v)
        np.multiply(v, v_correction, out=scratch)
        np.sqrt(scratch, out=scratch)
        np.add(scratch, epsilon, out=scratch)
        np.divide(m, scratch, out=scratch)
        np.multiply(scratch, step_size, out=scratch)
        np.subtract(w, scratch, out=w)


def _kernel_arguments(name: str, config: Config) -> tuple:
    """The rule's scalars as the pure rule computes them (Python floats), in kernel order.
    Adam's step count is advanced in `config`."""
    if name == "sgd":
        return (config["learning_rate"],)
    if name == "sgd_momentum":
        return config["momentum"], config["learning_rate"]
    if name == "rmsprop":
        decay = config["decay_rate"]
        return decay, 1 - decay, config["learning_rate"], config["epsilon"]
    beta1, beta2 = config["beta1"], config["beta2"]
    t = config["t"] = config["t"] + 1
    return (beta1, 1 - beta1, beta2, 1 - beta2, 1 / (1 - beta2**t), config["epsilon"],
            config["learning_rate"] / (1 - beta1**t))


def apply_updates(params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                  configs: dict[str, Config], rule: str | UpdateRule) -> None:
    """Update every parameter as `params[name], configs[name] = rule(params[name],
    grads[name], configs[name])` would, for every name of params.

    With a rule of UPDATE_RULES and float32/float64 arrays the weights and the state arrays
    of the configs are updated in place (params[name] stays the same array; configs[name] is
    a new dict holding the updated state arrays), with the pure rule's results bit for bit.
    """
    rule = get_update_rule(rule)
    name = _NAMES.get(rule)
    jobs = []
    for key, w in params.items():
        dw = grads[key]
        config = _with_defaults(configs[key], name) if name is not None else None
        if config is None or not _in_place_ready(name, w, dw, config):
            params[key], configs[key] = rule(w, dw, configs[key])
            continue
        state = []
        for state_key in STATE_KEYS[name]:
            if config.get(state_key) is None:
                config[state_key] = np.zeros_like(w)
            state.append(config[state_key])
        jobs.append((w, dw, state, _kernel_arguments(name, config)))
        configs[key] = config
    if jobs:
        _run_jobs(name, jobs)


def _run_jobs(name: str, jobs: list) -> None:
    from cvlab.layers import fast, threads

    kernels = _kernels()
    if kernels is None or fast.implementation() == "numpy":  # CVLAB_FAST_LAYERS=numpy too
        for w, dw, state, args in jobs:
            _numpy_update(name, w, dw, state, args)
        return
    kernel = getattr(kernels, name)
    flat = [(w.reshape(-1), dw.reshape(-1), [s.reshape(-1) for s in state], args)
            for w, dw, state, args in jobs]
    parts = [(job, start, stop) for job in flat
             for start, stop in itertools.pairwise(
                 list(range(0, job[0].size, PART_SIZE)) + [job[0].size])]

    def update(i: int) -> None:
        (w, dw, state, args), start, stop = parts[i]
        kernel(w, dw, *state, *args, start, stop)

    threads.for_each(len(parts), update)


_NAMES: dict[UpdateRule, str] = {rule: name for name, rule in UPDATE_RULES.items()}
