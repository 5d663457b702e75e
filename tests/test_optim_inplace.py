"""apply_updates: the in-place fast path of the update rules equals the pure rules bit for bit
(float32 and float64, every rule, many steps, compiled kernels and numpy fallback, any number
of threads), and falls back to the pure rule wherever it could not be exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvlab import layers as L
from cvlab.defaults import HYPERPARAMETERS
from cvlab.train import optim
from cvlab.train.optim import UPDATE_RULES, apply_updates

IMPLEMENTATIONS = L.fast.available_implementations()

hyperparameters = {
    "learning_rate": st.floats(1e-5, 0.5),
    "momentum": st.floats(0.0, 0.99),
    "decay_rate": st.floats(0.5, 0.999),
    "beta1": st.floats(0.5, 0.99),
    "beta2": st.floats(0.9, 0.9999),
    "epsilon": st.sampled_from([1e-8, 1e-6, 1e-4]),
}


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint8)


def _pure_trajectory(rule, params, grads_per_step, config):
    params = {k: v.copy() for k, v in params.items()}
    configs = {k: dict(config) for k in params}
    for grads in grads_per_step:
        for k in params:
            params[k], configs[k] = rule(params[k], grads[k], configs[k])
    return params, configs


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(list(UPDATE_RULES)), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 4),
       data=st.data())
def test_in_place_updates_equal_the_pure_rules_bit_for_bit(name, dtype, seed, steps, data):
    config = {key: data.draw(hyperparameters[key], label=key)
              for key in HYPERPARAMETERS[name]}
    rng = np.random.RandomState(seed)
    shapes = {"W": (rng.randint(1, 40), rng.randint(1, 9)), "b": (rng.randint(1, 9),),
              "big": (optim.PART_SIZE + 17,)}  # split into parts for the threads
    params = {k: rng.randn(*shape).astype(dtype) for k, shape in shapes.items()}
    grads_per_step = [{k: (rng.randn(*shape) * 10 ** rng.uniform(-3, 1)).astype(dtype)
                       for k, shape in shapes.items()} for _ in range(steps)]
    grads_per_step[0]["b"][0] = 0.0  # exact zeros in the gradient
    want_params, want_configs = _pure_trajectory(UPDATE_RULES[name], params, grads_per_step,
                                                 config)
    for implementation in IMPLEMENTATIONS:
        for count in (1, 2):
            got = {k: v.copy() for k, v in params.items()}
            arrays = dict(got)
            configs = {k: dict(config) for k in got}
            with L.use_implementation(implementation), L.use_threads(count):
                for grads in grads_per_step:
                    apply_updates(got, grads, configs, name)
            for k in got:
                assert got[k] is arrays[k]  # updated in place
                assert got[k].dtype == dtype
                np.testing.assert_array_equal(_bits(got[k]), _bits(want_params[k]))
                assert set(configs[k]) == set(want_configs[k])
                for key, value in want_configs[k].items():
                    if isinstance(value, np.ndarray):
                        assert configs[k][key].dtype == value.dtype
                        np.testing.assert_array_equal(_bits(configs[k][key]), _bits(value))
                    else:
                        assert configs[k][key] == value


def test_solver_style_configs_keep_their_values_across_learning_rate_decay():
    """The Solver decays learning_rate inside each config between epochs (a Python float):
    the fast path must read the decayed value."""
    rng = np.random.RandomState(0)
    w, dw = rng.randn(5, 3), rng.randn(5, 3)
    params, configs = {"w": w.copy()}, {"w": {"learning_rate": 1e-2}}
    pure_w, pure_config = w.copy(), {"learning_rate": 1e-2}
    for _ in range(4):
        apply_updates(params, {"w": dw}, configs, "adam")
        pure_w, pure_config = optim.adam(pure_w, dw, pure_config)
        configs["w"]["learning_rate"] *= 0.5
        pure_config["learning_rate"] *= 0.5
    np.testing.assert_array_equal(params["w"], pure_w)


@pytest.mark.parametrize("case", ["numpy_scalar", "view", "mixed_dtype", "custom_rule",
                                  "float16", "foreign_state"])
def test_cases_the_kernels_cannot_do_exactly_go_through_the_pure_rule(case):
    rng = np.random.RandomState(1)
    w = rng.randn(6, 4)
    dw = rng.randn(6, 4)
    config = {"learning_rate": 1e-2}
    rule = "adam"
    if case == "numpy_scalar":  # numpy computes with a float64 scalar in float64
        w, dw = w.astype(np.float32), dw.astype(np.float32)
        config = {"learning_rate": np.float64(1e-2)}
    elif case == "view":
        w = np.repeat(w, 2, axis=0)[::2]
    elif case == "mixed_dtype":
        dw = dw.astype(np.float32)
    elif case == "custom_rule":
        def rule(w, dw, config):
            return w - 2 * dw, config
    elif case == "float16":
        w, dw = w.astype(np.float16), dw.astype(np.float16)
    elif case == "foreign_state":
        config = {"learning_rate": 1e-2, "m": np.zeros((6, 4), np.float32)}
    expected_w, expected_config = optim.get_update_rule(rule)(w.copy(), dw, dict(config))
    params, configs = {"w": w}, {"w": dict(config)}
    apply_updates(params, {"w": dw}, configs, rule)
    assert params["w"] is not w  # a new array, as the pure rule returns
    np.testing.assert_array_equal(params["w"], expected_w)
    assert params["w"].dtype == expected_w.dtype
    for key, value in expected_config.items():
        np.testing.assert_array_equal(configs["w"][key], value)


def test_unknown_rule_names_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="valid rules: sgd, sgd_momentum, rmsprop, adam"):
        apply_updates({"w": np.zeros(2)}, {"w": np.zeros(2)}, {"w": {}}, "adagrad")


def test_the_pure_rules_stay_pure_functions():
    w, dw = np.ones(3), np.ones(3)
    for rule in UPDATE_RULES.values():
        w0, dw0 = w.copy(), dw.copy()
        next_w, config = rule(w, dw, {})
        assert next_w is not w
        np.testing.assert_array_equal(w, w0)
        np.testing.assert_array_equal(dw, dw0)
