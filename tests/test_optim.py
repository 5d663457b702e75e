"""Update rules: hand-computed first steps, torch.optim trajectories, defaults, registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cvlab.train import optim
from cvlab.train.optim import UPDATE_RULES, get_update_rule

pytestmark = pytest.mark.numerics  # rerun by `make test-portable`


def _arrays():
    N, D = 4, 5
    w = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
    dw = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
    return w, dw


def test_sgd_step_by_hand():
    w, dw = _arrays()
    next_w, config = optim.sgd(w, dw, {"learning_rate": 0.1})
    np.testing.assert_allclose(next_w, w - 0.1 * dw, rtol=0, atol=1e-15)
    assert config["learning_rate"] == 0.1


def test_sgd_momentum_step_by_hand():
    w, dw = _arrays()
    v = np.linspace(0.6, 0.9, num=w.size).reshape(w.shape)
    next_w, config = optim.sgd_momentum(w, dw, {"learning_rate": 1e-3, "velocity": v})
    expected_v = 0.9 * v - 1e-3 * dw
    np.testing.assert_allclose(config["velocity"], expected_v, rtol=1e-12)
    np.testing.assert_allclose(next_w, w + expected_v, rtol=1e-12)


def test_rmsprop_step_by_hand():
    w, dw = _arrays()
    cache = np.linspace(0.6, 0.9, num=w.size).reshape(w.shape)
    next_w, config = optim.rmsprop(w, dw, {"learning_rate": 1e-2, "cache": cache})
    expected_cache = 0.99 * cache + 0.01 * dw**2
    np.testing.assert_allclose(config["cache"], expected_cache, rtol=1e-12)
    np.testing.assert_allclose(next_w, w - 1e-2 * dw / (np.sqrt(expected_cache) + 1e-8),
                               rtol=1e-12)


def test_adam_step_by_hand_increments_t_before_bias_correction():
    w, dw = _arrays()
    m = np.linspace(0.6, 0.9, num=w.size).reshape(w.shape)
    v = np.linspace(0.7, 0.5, num=w.size).reshape(w.shape)
    next_w, config = optim.adam(w, dw, {"learning_rate": 1e-2, "m": m, "v": v, "t": 5})
    assert config["t"] == 6
    m1 = 0.9 * m + 0.1 * dw
    v1 = 0.999 * v + 0.001 * dw**2
    m_hat, v_hat = m1 / (1 - 0.9**6), v1 / (1 - 0.999**6)
    np.testing.assert_allclose(config["m"], m1, rtol=1e-12)
    np.testing.assert_allclose(config["v"], v1, rtol=1e-12)
    np.testing.assert_allclose(next_w, w - 1e-2 * m_hat / (np.sqrt(v_hat) + 1e-8), rtol=1e-12)


@pytest.mark.parametrize(
    "rule, defaults",
    [
        ("sgd", {"learning_rate": 1e-2}),
        ("sgd_momentum", {"learning_rate": 1e-2, "momentum": 0.9}),
        ("rmsprop", {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}),
        ("adam", {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "t": 1}),
    ],
)
def test_course_defaults_filled_in(rule, defaults):
    w, dw = _arrays()
    _, config = UPDATE_RULES[rule](w, dw, None)
    for key, value in defaults.items():
        assert config[key] == value


def test_rules_are_pure():
    w, dw = _arrays()
    w0, dw0 = w.copy(), dw.copy()
    config = {"learning_rate": 1e-2}
    for rule in UPDATE_RULES.values():
        _, new_config = rule(w, dw, config)
        assert new_config is not config
    assert config == {"learning_rate": 1e-2}
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(dw, dw0)


def _torch_trajectory(name: str, w0: np.ndarray, grads: list[np.ndarray], lr: float):
    p = torch.nn.Parameter(torch.tensor(w0))
    make = {
        "sgd": lambda: torch.optim.SGD([p], lr=lr),
        "sgd_momentum": lambda: torch.optim.SGD([p], lr=lr, momentum=0.9),
        "rmsprop": lambda: torch.optim.RMSprop([p], lr=lr, alpha=0.99, eps=1e-8),
        "adam": lambda: torch.optim.Adam([p], lr=lr, betas=(0.9, 0.999), eps=1e-8),
    }[name]
    opt = make()
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    return p.detach().numpy()


@pytest.mark.parametrize("name", list(UPDATE_RULES))
def test_trajectory_matches_torch_optim(name):
    rng = np.random.RandomState(0)
    w0 = rng.randn(3, 4)
    grads = [rng.randn(3, 4) for _ in range(20)]
    w, config = w0.copy(), {"learning_rate": 3e-2}
    for g in grads:
        w, config = get_update_rule(name)(w, g, config)
    np.testing.assert_allclose(w, _torch_trajectory(name, w0, grads, 3e-2), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("name", list(UPDATE_RULES))
def test_float32_stays_float32(name):
    w, dw = (a.astype(np.float32) for a in _arrays())
    next_w, config = get_update_rule(name)(w, dw, None)
    next_w, _ = get_update_rule(name)(next_w, dw, config)
    assert next_w.dtype == np.float32


def test_unknown_rule_lists_valid_ones():
    with pytest.raises(ValueError, match="sgd, sgd_momentum, rmsprop, adam"):
        get_update_rule("adagrad")
