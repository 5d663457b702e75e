"""ThreeLayerConvNet: initial loss, RNG order, gradient check, PyTorch oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cvlab.checks.models import check_cnn
from cvlab.models import ThreeLayerConvNet

pytestmark = pytest.mark.numerics  # rerun by `make test-portable`


def test_initial_loss_is_log_10_and_reg_adds():
    np.random.seed(231)
    model = ThreeLayerConvNet()
    X = np.random.randn(10, 3, 32, 32)
    y = np.random.randint(10, size=10)
    loss, _ = model.loss(X, y)
    assert loss == pytest.approx(np.log(10), abs=2e-3)
    model.reg = 0.5
    loss_reg, _ = model.loss(X, y)
    expected_reg = 0.5 * 0.5 * sum(np.sum(model.params[w].astype(np.float64) ** 2)
                                   for w in ("W1", "W2", "W3"))
    assert loss_reg - loss == pytest.approx(expected_reg, rel=1e-4)


def test_weights_drawn_in_the_course_order():
    np.random.seed(231)
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=6,
                              weight_scale=0.1, dtype=np.float64)
    np.random.seed(231)
    np.testing.assert_array_equal(model.params["W1"], 0.1 * np.random.randn(4, 3, 3, 3))
    np.testing.assert_array_equal(model.params["W2"], 0.1 * np.random.randn(4 * 4 * 4, 6))
    np.testing.assert_array_equal(model.params["W3"], 0.1 * np.random.randn(6, 10))
    for name, size in (("b1", 4), ("b2", 6), ("b3", 10)):
        np.testing.assert_array_equal(model.params[name], np.zeros(size))


def test_float32_end_to_end():
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, hidden_dim=6,
                              rng=np.random.RandomState(0))
    X = np.random.RandomState(1).randn(2, 3, 8, 8)
    loss, grads = model.loss(X, np.array([1, 2]))
    assert model.loss(X).dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    assert np.isfinite(loss)


def test_gradient_check_passes():
    rows = check_cnn(np.random.RandomState(231))
    assert {r.what.split(": ")[1] for r in rows} == {"dW1", "db1", "dW2", "db2", "dW3", "db3"}
    failed = [(r.what, r.rel_error) for r in rows if not r.passed]
    assert not failed


def test_loss_and_gradients_match_pytorch():
    rng = np.random.RandomState(5)
    model = ThreeLayerConvNet(input_dim=(3, 10, 10), num_filters=5, filter_size=5,
                              hidden_dim=8, num_classes=4, weight_scale=0.1, reg=0.3,
                              dtype=np.float64, rng=rng)
    for name in ("b1", "b2", "b3"):
        model.params[name] = rng.randn(*model.params[name].shape) * 0.1
    X, y = rng.randn(3, 3, 10, 10), rng.randint(4, size=3)
    loss, grads = model.loss(X, y)

    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    out = F.max_pool2d(torch.relu(F.conv2d(torch.tensor(X), p["W1"], p["b1"], padding=2)), 2, 2)
    hidden = torch.relu(out.reshape(3, -1) @ p["W2"] + p["b2"])
    scores = hidden @ p["W3"] + p["b3"]
    expected = F.cross_entropy(scores, torch.tensor(y)) + 0.5 * 0.3 * sum(
        (p[w] ** 2).sum() for w in ("W1", "W2", "W3"))
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-10)
    np.testing.assert_allclose(model.loss(X), scores.detach().numpy(), rtol=1e-10)
    for name in p:
        np.testing.assert_allclose(grads[name], p[name].grad.numpy(), rtol=1e-7, atol=1e-12)
