"""Numeric gradient checks of every layer at the course's tolerances (through the registry that
`cvlab gradcheck` runs), and the gradient-check helpers themselves."""

from __future__ import annotations

import random

import numpy as np
import pytest

from cvlab.checks import load_checks
from cvlab.gradcheck import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    grad_check_sparse,
    rel_error,
)

LAYER_CHECKS = ["affine", "relu", "softmax", "svm", "batchnorm", "batchnorm_alt", "layernorm",
                "dropout", "conv", "conv_fast", "maxpool", "maxpool_fast", "spatial_batchnorm",
                "spatial_groupnorm", "affine_relu", "affine_norm_relu", "conv_relu",
                "conv_relu_pool", "conv_bn_relu"]


def test_every_layer_has_a_registered_check_in_the_course_order():
    names = list(load_checks())
    assert names[:len(LAYER_CHECKS)] == LAYER_CHECKS


@pytest.mark.parametrize("name", LAYER_CHECKS)
def test_layer_gradients_pass_at_course_tolerances(name):
    rows = load_checks()[name](np.random.RandomState(231))
    assert rows
    for row in rows:
        assert row.tolerance <= 1e-5  # a wrong gradient is off by 1e-3 or more
        assert row.passed, f"{name} {row.what}: {row.rel_error:.2e} > {row.tolerance:.0e}"


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
