"""FullyConnectedNet: the course's initial losses and RNG order, gradient checks, PyTorch oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cvlab.checks.models import FC_SETTINGS, check_fc_net
from cvlab.models import FullyConnectedNet

pytestmark = pytest.mark.numerics  # rerun by `make test-portable`


def test_initial_losses_match_the_course():
    # The course's FullyConnectedNets notebook, with np.random.seed(231) first.
    np.random.seed(231)
    N, D, H1, H2, C = 2, 15, 20, 30, 10
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))
    losses = []
    for reg in [0, 3.14]:
        model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=reg,
                                  weight_scale=5e-2, dtype=np.float64)
        losses.append(model.loss(X, y)[0])
    np.testing.assert_allclose(losses, [2.3004790897684924, 7.052114776533016], rtol=1e-12)


@pytest.mark.parametrize("normalization", ["none", "batchnorm", "layernorm"])
def test_weights_drawn_in_the_course_order(normalization):
    dims = [12, 7, 5, 3]
    np.random.seed(231)
    model = FullyConnectedNet(dims[1:-1], input_dim=12, num_classes=3, weight_scale=0.3,
                              normalization=normalization, dtype=np.float64)
    np.random.seed(231)
    for i in range(3):
        expected = 0.3 * np.random.randn(dims[i], dims[i + 1])
        np.testing.assert_array_equal(model.params[f"W{i + 1}"], expected)
        np.testing.assert_array_equal(model.params[f"b{i + 1}"], np.zeros(dims[i + 1]))
    names = {"W1", "W2", "W3", "b1", "b2", "b3"}
    if normalization != "none":
        names |= {"gamma1", "gamma2", "beta1", "beta2"}
        np.testing.assert_array_equal(model.params["gamma2"], np.ones(5))
        np.testing.assert_array_equal(model.params["beta1"], np.zeros(7))
    assert set(model.params) == names
    # An explicit rng gives the same draws as the seeded global RNG and leaves it alone.
    state = np.random.get_state()
    other = FullyConnectedNet(dims[1:-1], input_dim=12, num_classes=3, weight_scale=0.3,
                              normalization=normalization, dtype=np.float64,
                              rng=np.random.RandomState(231))
    assert np.random.get_state()[2] == state[2]
    np.testing.assert_array_equal(np.random.get_state()[1], state[1])
    for name in model.params:
        np.testing.assert_array_equal(other.params[name], model.params[name])


def test_dtype_of_params_and_scores():
    model = FullyConnectedNet([6], input_dim=4, num_classes=3, rng=np.random.RandomState(0))
    assert all(v.dtype == np.float32 for v in model.params.values())
    scores = model.loss(np.random.RandomState(1).randn(5, 4))
    assert scores.shape == (5, 3) and scores.dtype == np.float32


def test_gradient_checks_pass_for_every_setting():
    rows = check_fc_net(np.random.RandomState(231))
    failed = [(r.what, r.rel_error) for r in rows if not r.passed]
    assert not failed
    prefixes = {r.what.split(":")[0] for r in rows}
    assert len(prefixes) == len(FC_SETTINGS) == 6
    assert any("batchnorm,keep=0.5,reg=3.14" in p for p in prefixes)


def test_wrong_gradient_is_caught():
    # The check must be able to fail: break one analytic gradient.
    model = FullyConnectedNet([5], input_dim=4, num_classes=3, dtype=np.float64,
                              rng=np.random.RandomState(0))
    original = model.loss

    def broken(X, y=None):
        out = original(X, y)
        if y is None:
            return out
        loss, grads = out
        grads["W1"] = grads["W1"] * 1.01
        return loss, grads

    model.loss = broken
    from cvlab.checks.models import model_rows

    X, y = np.random.RandomState(1).randn(3, 4), np.array([0, 1, 2])
    rows = {r.what: r for r in model_rows(model, X, y, "", lambda _: 1e-6)}
    assert not rows["dW1"].passed and rows["dW2"].passed


def _torch_loss(params, X, y, normalization, reg, L):
    out = torch.tensor(X)
    for i in range(1, L):
        out = out @ params[f"W{i}"] + params[f"b{i}"]
        if normalization == "batchnorm":
            out = F.batch_norm(out, None, None, params[f"gamma{i}"], params[f"beta{i}"],
                               training=True, eps=1e-5)
        elif normalization == "layernorm":
            out = F.layer_norm(out, out.shape[1:], params[f"gamma{i}"], params[f"beta{i}"],
                               eps=1e-5)
        out = torch.relu(out)
    scores = out @ params[f"W{L}"] + params[f"b{L}"]
    loss = F.cross_entropy(scores, torch.tensor(y))
    return loss + 0.5 * reg * sum((params[f"W{i}"] ** 2).sum() for i in range(1, L + 1))


@pytest.mark.parametrize("normalization", ["none", "batchnorm", "layernorm"])
def test_loss_and_gradients_match_pytorch(normalization):
    rng = np.random.RandomState(3)
    X, y = rng.randn(8, 3, 2, 2), rng.randint(4, size=8)
    model = FullyConnectedNet([9, 7], input_dim=12, num_classes=4, normalization=normalization,
                              reg=0.7, weight_scale=0.2, dtype=np.float64, rng=rng)
    loss, grads = model.loss(X, y)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    expected = _torch_loss(params, X.reshape(8, -1), y, normalization, 0.7, 3)
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-10)
    for name, p in params.items():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-7, atol=1e-10)


def test_batchnorm_uses_running_statistics_at_test_time():
    rng = np.random.RandomState(0)
    model = FullyConnectedNet([6], input_dim=4, num_classes=3, normalization="batchnorm",
                              dtype=np.float64, rng=rng)
    X, y = rng.randn(10, 4) * 3 + 1, rng.randint(3, size=10)
    for _ in range(50):
        model.loss(X, y)
    assert model.bn_params[0]["mode"] == "train"
    scores_a = model.loss(X[:1])  # one sample in test mode: no batch statistics involved
    assert model.bn_params[0]["mode"] == "test"
    scores_b = model.loss(X[:3])[:1]
    np.testing.assert_allclose(scores_a, scores_b, rtol=1e-12)


def test_dropout_only_in_train_mode():
    rng = np.random.RandomState(0)
    model = FullyConnectedNet([50], input_dim=4, num_classes=3, dropout_keep_ratio=0.5,
                              dtype=np.float64, rng=rng)
    X = rng.randn(6, 4)
    np.testing.assert_array_equal(model.loss(X), model.loss(X))  # test mode: deterministic
    y = np.zeros(6, dtype=np.int64)
    assert model.loss(X, y)[0] != model.loss(X, y)[0]  # fresh masks each train call


def test_bad_arguments():
    with pytest.raises(ValueError, match="normalization"):
        FullyConnectedNet([3], normalization="groupnorm")
    with pytest.raises(ValueError, match="dropout_keep_ratio"):
        FullyConnectedNet([3], dropout_keep_ratio=0)


@pytest.mark.parametrize("normalization", ["batchnorm", "layernorm", None])
def test_bad_batches_are_refused_before_anything_changes(normalization):
    rng = np.random.RandomState(0)
    model = FullyConnectedNet([6], input_dim=4, num_classes=3, normalization=normalization,
                              dtype=np.float64, rng=rng)
    X = rng.randn(5, 4)
    cases = [
        (np.array([0, 1, 2, 3, 0]), r"labels y \(5,\) must lie in \[0, 3\).*from 0 to 3"),
        (np.array([0, 1, -1, 1, 0]), r"\[0, 3\).*from -1 to 1"),
        (np.array([0, 1, 2]), r"X \(5, 4\) and y \(3,\)"),
        (np.zeros(5), "integers, got dtype float64"),
    ]
    for y, message in cases:
        with pytest.raises(ValueError, match=message):
            model.loss(X, y)
    with pytest.raises(ValueError, match=r"empty batch \(X \(0, 4\), y \(0,\)\)"):
        model.loss(X[:0], np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match=r"empty batch \(X \(0, 4\)\)"):
        model.loss(X[:0])  # test mode too
    assert all("running_mean" not in bn for bn in model.bn_params)  # no statistics touched
    assert model.loss(X[:2]).shape == (2, 3)
