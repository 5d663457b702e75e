"""Every layer against PyTorch in float64: forward values and autograd gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cvlab import layers as L
from cvlab.gradcheck import rel_error

pytestmark = pytest.mark.numerics  # rerun by `make test-portable`

TOL = 1e-9


def t(a: np.ndarray, grad: bool = True) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def grads(out: torch.Tensor, dout: np.ndarray, *inputs: torch.Tensor) -> list[np.ndarray]:
    out.backward(torch.tensor(dout))
    return [i.grad.numpy() for i in inputs]


def assert_close(ours, theirs, tol: float = TOL) -> None:
    for a, b in zip(ours, theirs):
        assert np.shape(a) == np.shape(b)
        assert rel_error(np.asarray(a), np.asarray(b)) < tol


@pytest.fixture
def rng() -> np.random.RandomState:
    return np.random.RandomState(231)


def test_affine(rng):
    x, w, b = rng.randn(4, 2, 3, 2), rng.randn(12, 5), rng.randn(5)
    out, cache = L.affine_forward(x, w, b)
    dout = rng.randn(*out.shape)
    xt, wt, bt = t(x), t(w), t(b)
    ref = xt.reshape(4, -1) @ wt + bt
    assert_close([out], [ref.detach().numpy()])
    assert_close(L.affine_backward(dout, cache), grads(ref, dout, xt, wt, bt))


def test_relu(rng):
    x = rng.randn(5, 7)
    out, cache = L.relu_forward(x)
    dout = rng.randn(*out.shape)
    xt = t(x)
    ref = torch.relu(xt)
    assert_close([out], [ref.detach().numpy()])
    assert_close([L.relu_backward(dout, cache)], grads(ref, dout, xt))


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_softmax_loss_matches_cross_entropy(rng, scale):
    x, y = scale * rng.randn(20, 10), rng.randint(10, size=20)
    loss, dx = L.softmax_loss(x, y)
    xt = t(x)
    ref = F.cross_entropy(xt, torch.tensor(y))
    ref.backward()
    assert abs(loss - ref.item()) <= 1e-9 * max(1.0, abs(ref.item()))
    assert_close([dx], [xt.grad.numpy()])


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_svm_loss_matches_multi_margin_loss(rng, scale):
    C = 10
    x, y = scale * rng.randn(20, C), rng.randint(C, size=20)
    loss, dx = L.svm_loss(x, y)
    xt = t(x)
    # torch divides each sample's hinge sum by the number of classes C
    ref = C * F.multi_margin_loss(xt, torch.tensor(y), p=1, margin=1.0)
    ref.backward()
    assert abs(loss - ref.item()) <= 1e-9 * max(1.0, abs(ref.item()))
    assert_close([dx], [xt.grad.numpy()])


def test_batchnorm_train_and_test(rng):
    N, D = 8, 6
    x, gamma, beta = 3 * rng.randn(N, D) + 2, rng.randn(D), rng.randn(D)
    bn_param = {"mode": "train"}
    out, cache = L.batchnorm_forward(x, gamma, beta, bn_param)
    dout = rng.randn(N, D)
    xt, gt, bt = t(x), t(gamma), t(beta)
    ref = F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    assert_close([out], [ref.detach().numpy()])
    expected = grads(ref, dout, xt, gt, bt)
    assert_close(L.batchnorm_backward(dout, cache), expected)
    assert_close(L.batchnorm_backward_alt(dout, cache), expected)
    # test mode: normalize with the running statistics
    x_test = rng.randn(3, D)
    out_test, _ = L.batchnorm_forward(x_test, gamma, beta, {**bn_param, "mode": "test"})
    ref_test = F.batch_norm(t(x_test, False), torch.tensor(bn_param["running_mean"]),
                            torch.tensor(bn_param["running_var"]), t(gamma, False),
                            t(beta, False), training=False, eps=1e-5)
    assert_close([out_test], [ref_test.numpy()])


def test_layernorm(rng):
    N, D = 5, 7
    x, gamma, beta = 3 * rng.randn(N, D) + 1, rng.randn(D), rng.randn(D)
    out, cache = L.layernorm_forward(x, gamma, beta, {"eps": 1e-5})
    dout = rng.randn(N, D)
    xt, gt, bt = t(x), t(gamma), t(beta)
    ref = F.layer_norm(xt, (D,), gt, bt, eps=1e-5)
    assert_close([out], [ref.detach().numpy()])
    assert_close(L.layernorm_backward(dout, cache), grads(ref, dout, xt, gt, bt))


def test_spatial_batchnorm(rng):
    N, C, H, W = 3, 4, 5, 6
    x, gamma, beta = 2 * rng.randn(N, C, H, W) + 1, rng.randn(C), rng.randn(C)
    out, cache = L.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dout = rng.randn(N, C, H, W)
    xt, gt, bt = t(x), t(gamma), t(beta)
    ref = F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    assert_close([out], [ref.detach().numpy()])
    assert_close(L.spatial_batchnorm_backward(dout, cache), grads(ref, dout, xt, gt, bt))


@pytest.mark.parametrize("G", [1, 2, 3, 6])
def test_spatial_groupnorm(rng, G):
    N, C, H, W = 2, 6, 4, 5
    x = 2 * rng.randn(N, C, H, W) + 1
    gamma, beta = rng.randn(1, C, 1, 1), rng.randn(1, C, 1, 1)
    out, cache = L.spatial_groupnorm_forward(x, gamma, beta, G, {"eps": 1e-5})
    dout = rng.randn(N, C, H, W)
    xt, gt, bt = t(x), t(gamma), t(beta)
    ref = F.group_norm(xt, G, gt.reshape(C), bt.reshape(C), eps=1e-5)
    assert_close([out], [ref.detach().numpy()])
    dx, dgamma, dbeta = L.spatial_groupnorm_backward(dout, cache)
    assert dgamma.shape == dbeta.shape == (1, C, 1, 1)
    assert_close([dx, dgamma, dbeta], grads(ref, dout, xt, gt, bt))


CONV_CASES = [  # (N, C, H, W), (F, HH, WW), stride, pad
    ((2, 3, 7, 7), (4, 3, 3), 1, 1),
    ((2, 2, 8, 6), (3, 3, 2), 2, 0),
    ((1, 3, 9, 9), (2, 5, 5), 3, 2),
    ((3, 1, 5, 4), (2, 1, 1), 1, 0),
    ((2, 3, 6, 7), (2, 4, 4), 2, 1),  # the stride does not tile: the last rows are dropped
]


@pytest.mark.parametrize("implementation", ["naive", "fast"])
@pytest.mark.parametrize("x_shape, w_shape, stride, pad", CONV_CASES)
def test_conv(rng, implementation, x_shape, w_shape, stride, pad):
    forward = getattr(L, f"conv_forward_{implementation}")
    backward = getattr(L, f"conv_backward_{implementation}")
    F_, HH, WW = w_shape
    x, w, b = rng.randn(*x_shape), rng.randn(F_, x_shape[1], HH, WW), rng.randn(F_)
    conv_param = {"stride": stride, "pad": pad}
    out, cache = forward(x, w, b, conv_param)
    dout = rng.randn(*out.shape)
    xt, wt, bt = t(x), t(w), t(b)
    ref = F.conv2d(xt, wt, bt, stride=stride, padding=pad)
    assert_close([out], [ref.detach().numpy()])
    assert_close(backward(dout, cache), grads(ref, dout, xt, wt, bt))


POOL_CASES = [  # (N, C, H, W), pool_height, pool_width, stride
    ((2, 3, 8, 8), 2, 2, 2),
    ((2, 2, 7, 9), 3, 3, 2),  # overlapping, not tiling
    ((1, 3, 9, 7), 2, 3, 3),  # gaps between windows
    ((2, 1, 5, 5), 5, 5, 1),
    ((2, 2, 6, 5), 2, 1, 1),
]


@pytest.mark.parametrize("implementation", ["naive", "fast"])
@pytest.mark.parametrize("x_shape, ph, pw, stride", POOL_CASES)
def test_max_pool(rng, implementation, x_shape, ph, pw, stride):
    forward = getattr(L, f"max_pool_forward_{implementation}")
    backward = getattr(L, f"max_pool_backward_{implementation}")
    x = rng.randn(*x_shape)
    pool_param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    out, cache = forward(x, pool_param)
    dout = rng.randn(*out.shape)
    xt = t(x)
    ref = F.max_pool2d(xt, (ph, pw), stride)
    assert_close([out], [ref.detach().numpy()])
    assert_close([backward(dout, cache)], grads(ref, dout, xt))


def test_max_pool_ties_go_to_the_first_maximum_like_torch():
    x = np.zeros((1, 1, 4, 4))  # every window is a tie (as after a ReLU)
    pool_param = {"pool_height": 3, "pool_width": 3, "stride": 1}
    dout = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    xt = t(x)
    F.max_pool2d(xt, 3, 1).backward(torch.tensor(dout))
    for implementation in ("naive", "fast"):
        out, cache = getattr(L, f"max_pool_forward_{implementation}")(x, pool_param)
        dx = getattr(L, f"max_pool_backward_{implementation}")(dout, cache)
        np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_affine_relu(rng):
    x, w, b = rng.randn(3, 4, 2), rng.randn(8, 5), rng.randn(5)
    out, cache = L.affine_relu_forward(x, w, b)
    dout = rng.randn(*out.shape)
    xt, wt, bt = t(x), t(w), t(b)
    ref = torch.relu(xt.reshape(3, -1) @ wt + bt)
    assert_close([out], [ref.detach().numpy()])
    assert_close(L.affine_relu_backward(dout, cache), grads(ref, dout, xt, wt, bt))


@pytest.mark.parametrize("normalization", ["batchnorm", "layernorm", None])
@pytest.mark.parametrize("keep", [1.0, 0.6])
def test_affine_norm_relu(rng, normalization, keep):
    N, D, M = 6, 5, 4
    x, w, b = rng.randn(N, D), rng.randn(D, M), rng.randn(M)
    gamma, beta = rng.randn(M), rng.randn(M)
    dropout_param = {"mode": "train", "p": keep, "seed": 7} if keep < 1 else None
    out, cache = L.affine_norm_relu_forward(x, w, b, gamma, beta, {"mode": "train"},
                                            normalization, dropout_param)
    dout = rng.randn(N, M)
    xt, wt, bt, gt, bet = t(x), t(w), t(b), t(gamma), t(beta)
    a = xt @ wt + bt
    if normalization == "batchnorm":
        a = F.batch_norm(a, None, None, gt, bet, training=True, eps=1e-5)
    elif normalization == "layernorm":
        a = F.layer_norm(a, (M,), gt, bet, eps=1e-5)
    ref = torch.relu(a)
    if dropout_param is not None:
        mask = (np.random.RandomState(7).rand(N, M) < keep) / keep
        ref = ref * torch.tensor(mask)
    assert_close([out], [ref.detach().numpy()])
    dx, dw, db, dgamma, dbeta = L.affine_norm_relu_backward(dout, cache)
    expected = grads(ref, dout, xt, wt, bt)
    assert_close([dx, dw], expected[:2])
    if normalization == "batchnorm":  # the bias before batchnorm has no effect
        assert np.max(np.abs(db)) < 1e-12 and np.max(np.abs(expected[2])) < 1e-12
    else:
        assert_close([db], expected[2:])
    if normalization is None:
        assert dgamma is None and dbeta is None
    else:
        assert_close([dgamma, dbeta], [gt.grad.numpy(), bet.grad.numpy()])


def test_conv_sandwiches(rng):
    x, w, b = rng.randn(2, 3, 8, 8), rng.randn(4, 3, 3, 3), rng.randn(4)
    gamma, beta = rng.randn(4), rng.randn(4)
    conv_param = {"stride": 1, "pad": 1}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    cases = {
        "conv_relu": ((x, w, b, conv_param), lambda xt, wt, bt: torch.relu(
            F.conv2d(xt, wt, bt, padding=1))),
        "conv_relu_pool": ((x, w, b, conv_param, pool_param), lambda xt, wt, bt: F.max_pool2d(
            torch.relu(F.conv2d(xt, wt, bt, padding=1)), 2, 2)),
    }
    for name, (args, reference) in cases.items():
        out, cache = getattr(L, f"{name}_forward")(*args)
        dout = rng.randn(*out.shape)
        xt, wt, bt = t(x), t(w), t(b)
        ref = reference(xt, wt, bt)
        assert_close([out], [ref.detach().numpy()])
        assert_close(getattr(L, f"{name}_backward")(dout, cache), grads(ref, dout, xt, wt, bt))
    out, cache = L.conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, {"mode": "train"})
    dout = rng.randn(*out.shape)
    xt, wt, bt, gt, bet = t(x), t(w), t(b), t(gamma), t(beta)
    ref = torch.relu(F.batch_norm(F.conv2d(xt, wt, bt, padding=1), None, None, gt, bet,
                                  training=True, eps=1e-5))
    assert_close([out], [ref.detach().numpy()])
    dx, dw, db, dgamma, dbeta = L.conv_bn_relu_backward(dout, cache)
    ref.backward(torch.tensor(dout))
    assert_close([dx, dw, dgamma, dbeta], [xt.grad.numpy(), wt.grad.numpy(), gt.grad.numpy(),
                                           bet.grad.numpy()])
    assert np.max(np.abs(db)) < 1e-10
