"""Numeric gradient checks of every layer (through the registry that `cvlab gradcheck` runs),
with the margin the tolerances promise, and the gradient-check helpers themselves."""

from __future__ import annotations

import random

import numpy as np
import pytest

from cvlab.checks import CHECK_NAMES, check_names, get_check, load_checks
from cvlab.gradcheck import (
    centered_difference_error,
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    grad_check_sparse,
    max_abs_error,
    norm_error,
    numerical_gradient_off_kinks,
    rel_error,
)

pytestmark = pytest.mark.numerics

LAYER_CHECKS = ["affine", "relu", "softmax", "svm", "batchnorm", "batchnorm_alt", "layernorm",
                "dropout", "conv", "conv_fast", "maxpool", "maxpool_fast", "spatial_batchnorm",
                "spatial_groupnorm", "affine_relu", "affine_norm_relu", "conv_relu",
                "conv_relu_pool", "conv_bn_relu"]


def test_every_layer_has_a_registered_check_in_the_course_order():
    assert check_names()[:len(LAYER_CHECKS)] == LAYER_CHECKS


def test_the_names_known_without_imports_are_the_registered_checks():
    checks = load_checks()  # imports every check module
    for module, names in CHECK_NAMES.items():
        assert [checks[name].__module__ for name in names] == [module] * len(names)


@pytest.mark.parametrize("name", LAYER_CHECKS)
def test_layer_gradients_pass_with_a_10x_margin(name):
    rows = get_check(name)(np.random.RandomState(231))
    assert rows
    for row in rows:
        assert row.passed, f"{name} {row.what}: {row.error:.2e} > {row.tolerance:.0e}"
        assert row.error <= row.tolerance / 10, f"{name} {row.what}: less than 10x margin"
        if row.metric in ("rel", "norm"):
            assert row.tolerance <= 1e-6  # a wrong gradient is off by 1e-4 or more


def test_norm_error_ignores_what_inflates_the_course_maximum():
    analytic = np.array([1.0, -2.0, 1e-9])
    numeric = analytic + np.array([1e-11, -1e-11, 1e-11])  # the same absolute noise everywhere
    assert rel_error(analytic, numeric) > 5e-4  # the tiny entry sets the course's maximum
    assert norm_error(analytic, numeric) < 1e-11
    assert norm_error(np.zeros(3), np.zeros(3)) == 0.0
    assert norm_error(np.ones(2), -np.ones(2)) == pytest.approx(1.0)
    assert max_abs_error(np.zeros(2), np.array([0.0, -3e-9])) == pytest.approx(3e-9)


def test_the_error_model_bounds_the_numeric_error_of_a_known_function():
    rng = np.random.RandomState(0)
    x = rng.randn(4, 5)
    scale = 30.0  # f = scale * sum(sin(x)), whose third derivative is -scale * cos(x)
    numeric = eval_numerical_gradient(lambda v: scale * float(np.sum(np.sin(v))), x,
                                      verbose=False)
    bound = centered_difference_error(1e-5, f_size=scale * np.sum(np.abs(np.sin(x))),
                                      third_derivative=scale)
    error = np.abs(numeric - scale * np.cos(x))
    assert error.max() <= bound
    assert error.max() >= bound / 1000  # and the bound is not vacuous


def test_kinks_within_the_step_are_detected_and_smooth_entries_are_not():
    x = np.array([0.7, -1.3, 4e-6, -7e-6, 2.0])  # two entries within h = 1e-5 of relu's kink
    dout = np.array([1.0, 2.0, -1.5, 0.5, -0.3])
    grad, kinked = numerical_gradient_off_kinks(lambda v: np.maximum(v, 0), x, dout)
    assert kinked.tolist() == [False, False, True, True, False]
    np.testing.assert_allclose(grad[~kinked], (dout * (x > 0))[~kinked], rtol=1e-9)
    _, none = numerical_gradient_off_kinks(lambda v: float(np.sum(np.tanh(3 * v))),
                                           np.random.RandomState(1).randn(20))
    assert not none.any()


def test_rel_error_is_the_course_formula():
    x, y = np.array([1.0, 0.0, -2.0]), np.array([1.1, 0.0, -2.0])
    assert rel_error(x, y) == pytest.approx(0.1 / 2.1)
    assert rel_error(np.zeros(2), np.full(2, 1e-10)) == pytest.approx(1e-10 / 1e-8)


def test_numeric_gradients_by_centered_differences():
    rng = np.random.RandomState(0)
    x = rng.randn(3, 4)
    x_before = x.copy()
    grad = eval_numerical_gradient(lambda v: np.sum(v**3), x, verbose=False)
    np.testing.assert_allclose(grad, 3 * x**2, rtol=1e-8)
    np.testing.assert_array_equal(x, x_before)  # restored after each perturbation
    df = rng.randn(3, 4)
    grad = eval_numerical_gradient_array(lambda v: np.sin(v), x, df)
    np.testing.assert_allclose(grad, np.cos(x) * df, rtol=1e-8, atol=1e-12)


def test_eval_numerical_gradient_prints_when_verbose(capsys):
    eval_numerical_gradient(lambda v: float(np.sum(v)), np.zeros(2))
    assert "(0,) 1.0" in capsys.readouterr().out.replace("np.float64(1.0)", "1.0")


def test_grad_check_sparse_reports_relative_errors(capsys):
    rng = np.random.RandomState(1)
    x = rng.randn(5, 6)
    errors = grad_check_sparse(lambda v: np.sum(v**2), x, 2 * x, num_checks=7,
                               rng=random.Random(0))
    assert len(errors) == 7 and max(errors) < 1e-8
    assert capsys.readouterr().out.count("relative error") == 7
    bad = grad_check_sparse(lambda v: np.sum(v**2), x, 3 * x, num_checks=3, verbose=False)
    assert min(bad) > 0.1
