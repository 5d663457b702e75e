"""Behaviour users rely on: running statistics, train/test modes, dropout, dtypes, stability,
and clear errors for bad shapes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cvlab import layers as L


@pytest.fixture
def rng() -> np.random.RandomState:
    return np.random.RandomState(0)


def test_batchnorm_running_statistics_after_many_train_calls(rng):
    D, mean, std = 4, np.array([1.0, -2.0, 0.5, 10.0]), np.array([1.0, 3.0, 0.1, 2.0])
    gamma, beta = np.ones(D), np.zeros(D)
    bn_param = {"mode": "train", "momentum": 0.9}
    running_mean, running_var = np.zeros(D), np.zeros(D)
    for _ in range(300):
        x = mean + std * rng.randn(64, D)
        L.batchnorm_forward(x, gamma, beta, bn_param)
        # the course's update, by hand: running = momentum * running + (1 - momentum) * batch
        running_mean = 0.9 * running_mean + 0.1 * x.mean(axis=0)
        running_var = 0.9 * running_var + 0.1 * x.var(axis=0)
    np.testing.assert_allclose(bn_param["running_mean"], running_mean, rtol=1e-12)
    np.testing.assert_allclose(bn_param["running_var"], running_var, rtol=1e-12)
    np.testing.assert_allclose(bn_param["running_mean"], mean, atol=0.5)
    np.testing.assert_allclose(np.sqrt(bn_param["running_var"]), std, rtol=0.2)
    # test mode uses them (and leaves them alone)
    x = mean + std * rng.randn(7, D)
    before = bn_param["running_mean"].copy()
    out, _ = L.batchnorm_forward(x, gamma, beta, {**bn_param, "mode": "test"})
    expected = (x - running_mean) / np.sqrt(running_var + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    np.testing.assert_array_equal(bn_param["running_mean"], before)


def test_batchnorm_first_call_creates_zero_statistics_of_shape_D(rng):
    bn_param = {"mode": "train"}
    x = rng.randn(10, 3) + 5
    L.batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * x.mean(axis=0))
    assert bn_param["running_var"].shape == (3,)


def test_batchnorm_train_output_is_normalized(rng):
    x = 7 * rng.randn(200, 5) + 3
    out, _ = L.batchnorm_forward(x, np.ones(5), np.zeros(5), {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-3)


def test_layernorm_is_the_same_in_train_and_test(rng):
    x, gamma, beta = rng.randn(6, 8), rng.randn(8), rng.randn(8)
    train, _ = L.layernorm_forward(x, gamma, beta, {"mode": "train"})
    test, _ = L.layernorm_forward(x, gamma, beta, {"mode": "test"})
    np.testing.assert_array_equal(train, test)
    plain, _ = L.layernorm_forward(x, np.ones(8), np.zeros(8), {})
    np.testing.assert_allclose(plain.mean(axis=1), 0, atol=1e-12)


@pytest.mark.parametrize("p", [0.25, 0.5, 0.9])
def test_dropout_train_mode_keeps_mean_and_drops_one_minus_p(rng, p):
    x = rng.randn(500, 500) + 10
    out, _ = L.dropout_forward(x, {"mode": "train", "p": p, "seed": 1})
    assert abs(out.mean() - x.mean()) / x.mean() < 0.01  # inverted scaling keeps the mean
    assert abs((out == 0).mean() - (1 - p)) < 0.01
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / p)


def test_dropout_test_mode_is_the_identity(rng):
    x = rng.randn(20, 30)
    out, cache = L.dropout_forward(x, {"mode": "test", "p": 0.3})
    np.testing.assert_array_equal(out, x)
    dout = rng.randn(20, 30)
    np.testing.assert_array_equal(L.dropout_backward(dout, cache), dout)


def test_dropout_seeded_mask_is_reproducible_and_leaves_the_global_rng_alone(rng):
    x = rng.randn(30, 40)
    np.random.seed(5)
    state = np.random.get_state()
    first, _ = L.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 123})
    second, _ = L.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 123})
    np.testing.assert_array_equal(first, second)
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]
    # the same mask as the course's `np.random.seed(seed); rand(...)`
    np.random.seed(123)
    course = x * (np.random.rand(*x.shape) < 0.5) / 0.5
    np.testing.assert_array_equal(first, course)


def test_dropout_without_seed_draws_from_the_global_rng(rng):
    x = rng.randn(10, 10)
    np.random.seed(3)
    a, _ = L.dropout_forward(x, {"mode": "train", "p": 0.5})
    b, _ = L.dropout_forward(x, {"mode": "train", "p": 0.5})
    np.random.seed(3)
    c, _ = L.dropout_forward(x, {"mode": "train", "p": 0.5})
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_dropout_backward_uses_the_forward_mask(rng):
    x, dout = rng.randn(10, 10), rng.randn(10, 10)
    out, cache = L.dropout_forward(x, {"mode": "train", "p": 0.7, "seed": 2})
    dx = L.dropout_backward(dout, cache)
    np.testing.assert_allclose(dx, dout * np.where(out != 0, 1 / 0.7, 0))


def _all_layers_float32(rng):
    """(name, output arrays) of every layer run on float32 inputs."""
    f = np.float32
    x2, g, b = rng.randn(6, 5).astype(f), np.ones(5, f), np.zeros(5, f)
    x4 = rng.randn(2, 3, 6, 6).astype(f)
    w4, b4 = rng.randn(4, 3, 3, 3).astype(f), np.zeros(4, f)
    w2, bb = rng.randn(5, 3).astype(f), np.zeros(3, f)
    y = np.array([0, 1, 2, 3, 4, 0])
    conv = {"stride": 1, "pad": 1}
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    results = {}

    def run(name, forward, backward, *args):
        out, cache = forward(*args)
        grads = backward(np.ones_like(out), cache)
        results[name] = [out, *(grads if isinstance(grads, tuple) else [grads])]

    run("affine", L.affine_forward, L.affine_backward, x2, w2, bb)
    run("relu", L.relu_forward, L.relu_backward, x2)
    run("batchnorm", L.batchnorm_forward, L.batchnorm_backward, x2, g, b, {"mode": "train"})
    run("batchnorm_alt", L.batchnorm_forward, L.batchnorm_backward_alt, x2, g, b,
        {"mode": "train"})
    run("layernorm", L.layernorm_forward, L.layernorm_backward, x2, g, b, {})
    run("dropout", L.dropout_forward, L.dropout_backward, x2, {"mode": "train", "p": 0.5})
    for kind in ("naive", "fast"):
        run(f"conv_{kind}", getattr(L, f"conv_forward_{kind}"),
            getattr(L, f"conv_backward_{kind}"), x4, w4, b4, conv)
        run(f"pool_{kind}", getattr(L, f"max_pool_forward_{kind}"),
            getattr(L, f"max_pool_backward_{kind}"), x4, pool)
    run("spatial_batchnorm", L.spatial_batchnorm_forward, L.spatial_batchnorm_backward, x4,
        np.ones(3, f), np.zeros(3, f), {"mode": "train"})
    run("spatial_groupnorm", L.spatial_groupnorm_forward, L.spatial_groupnorm_backward, x4,
        np.ones((1, 3, 1, 1), f), np.zeros((1, 3, 1, 1), f), 3, {})
    run("conv_relu_pool", L.conv_relu_pool_forward, L.conv_relu_pool_backward, x4, w4, b4,
        conv, pool)
    run("conv_bn_relu", L.conv_bn_relu_forward, L.conv_bn_relu_backward, x4, w4, b4,
        np.ones(4, f), np.zeros(4, f), conv, {"mode": "train"})
    run("affine_norm_relu", L.affine_norm_relu_forward, L.affine_norm_relu_backward, x2, w2, bb,
        np.ones(3, f), np.zeros(3, f), {"mode": "train"}, "batchnorm",
        {"mode": "train", "p": 0.5, "seed": 0})
    for loss in ("softmax_loss", "svm_loss"):
        value, dx = getattr(L, loss)(x2, y)
        results[loss] = [np.asarray(value), dx]
    return results


def test_float32_in_gives_float32_out(rng):
    for name, arrays in _all_layers_float32(rng).items():
        for array in arrays:
            assert array.dtype == np.float32, f"{name} returned {array.dtype}"


@pytest.mark.parametrize("loss", [L.softmax_loss, L.svm_loss])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_are_finite_and_warning_free_for_huge_logits(rng, loss, dtype):
    x = (1e4 * rng.randn(50, 10)).astype(dtype)
    y = rng.randint(10, size=50)
    x[0] = 0
    x[0, y[0]] = -1e4  # the correct class's probability underflows to 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            value, dx = loss(x, y)
    assert np.isfinite(value) and np.all(np.isfinite(dx))
    assert value > 0


def test_softmax_loss_of_underflowing_probability_is_its_log(rng):
    x = np.zeros((1, 3))
    x[0, 0] = -1e4
    loss, _ = L.softmax_loss(x, np.array([0]))
    assert loss == pytest.approx(1e4 + np.log(2), rel=1e-12)


BAD_CONV = [
    ((2, 3, 5, 5), (4, 2, 3, 3), {"stride": 1, "pad": 1}, "channel"),
    ((2, 3, 5, 5), (4, 3, 9, 9), {"stride": 1, "pad": 1}, "larger than the padded input"),
    ((2, 3, 5, 5), (4, 3, 3, 3), {"stride": 0, "pad": 1}, "stride"),
    ((2, 3, 5, 5), (4, 3, 3, 3), {"stride": 1.5, "pad": 1}, "stride"),
    ((2, 3, 5, 5), (4, 3, 3, 3), {"stride": 1, "pad": -1}, "pad"),
    ((3, 5, 5), (4, 3, 3, 3), {"stride": 1, "pad": 1}, "(N, C, H, W)"),
]


@pytest.mark.parametrize("kind", ["naive", "fast"])
@pytest.mark.parametrize("x_shape, w_shape, conv_param, words", BAD_CONV)
def test_bad_conv_shapes_raise_value_error_naming_the_shapes(kind, x_shape, w_shape,
                                                             conv_param, words):
    x, w, b = np.zeros(x_shape), np.zeros(w_shape), np.zeros(w_shape[0])
    with pytest.raises(ValueError) as err:
        getattr(L, f"conv_forward_{kind}")(x, w, b, conv_param)
    message = str(err.value)
    assert words in message
    assert str(x_shape) in message and str(w_shape) in message


@pytest.mark.parametrize("kind", ["naive", "fast"])
def test_bad_pool_and_bias_shapes_raise_value_error(kind):
    x = np.zeros((2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"larger than the input x \(2, 3, 4, 4\)"):
        getattr(L, f"max_pool_forward_{kind}")(x, {"pool_height": 5, "pool_width": 2,
                                                   "stride": 1})
    with pytest.raises(ValueError, match="stride"):
        getattr(L, f"max_pool_forward_{kind}")(x, {"pool_height": 2, "pool_width": 2,
                                                   "stride": 0})
    with pytest.raises(ValueError, match=r"b \(3,\)"):
        getattr(L, f"conv_forward_{kind}")(x, np.zeros((4, 3, 3, 3)), np.zeros(3),
                                           {"stride": 1, "pad": 1})


def test_other_bad_shapes_raise_value_error():
    with pytest.raises(ValueError, match=r"x \(4, 6\).*w \(5, 3\)"):
        L.affine_forward(np.zeros((4, 6)), np.zeros((5, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"gamma \(4,\)"):
        L.batchnorm_forward(np.zeros((2, 5)), np.ones(4), np.zeros(5), {"mode": "train"})
    with pytest.raises(ValueError, match="mode"):
        L.batchnorm_forward(np.zeros((2, 5)), np.ones(5), np.zeros(5), {"mode": "eval"})
    with pytest.raises(ValueError, match="G=4"):
        L.spatial_groupnorm_forward(np.zeros((2, 6, 3, 3)), np.ones((1, 6, 1, 1)),
                                    np.zeros((1, 6, 1, 1)), 4, {})
    with pytest.raises(ValueError, match=r"labels"):
        L.softmax_loss(np.zeros((2, 3)), np.array([0, 3]))


# ---------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("loss", ["softmax_loss", "svm_loss"])
def test_losses_refuse_empty_batches_and_labels_outside_the_classes(loss):
    fn = getattr(L, loss)
    with pytest.raises(ValueError, match=r"empty batch \(scores x \(0, 10\), labels y \(0,\)\)"):
        fn(np.zeros((0, 10)), np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[0, 3\).*\(2, 3\).*from -1 to 0"):
        fn(np.zeros((2, 3)), np.array([0, -1]))  # -1 would silently pick the last class
    with pytest.raises(ValueError, match=r"\[0, 3\).*from 0 to 3"):
        fn(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="integers, got dtype float64"):
        fn(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"x \(2, 3\) and y \(3,\)"):
        fn(np.zeros((2, 3)), np.array([0, 1, 2]))
    loss_value, _ = fn(np.zeros((2, 3)), np.array([0, 2], dtype=np.int32))  # any integer dtype
    assert np.isfinite(loss_value)


def trained_bn_param(rng, D: int = 4) -> dict:
    bn_param = {"mode": "train"}
    for _ in range(5):
        L.batchnorm_forward(rng.randn(8, D), np.ones(D), np.zeros(D), bn_param)
    return bn_param


@pytest.mark.parametrize("bad", ["nan", "inf", "overflow"])
def test_batchnorm_never_writes_non_finite_running_statistics(rng, bad):
    bn_param = trained_bn_param(rng)
    before = (bn_param["running_mean"].copy(), bn_param["running_var"].copy())
    x = rng.randn(8, 4)
    if bad == "nan":
        x[3, 1] = np.nan
    elif bad == "inf":
        x[0, 2] = np.inf
    else:  # finite inputs whose variance overflows float64
        x[:, 0] = [1e200, -1e200] * 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out, _ = L.batchnorm_forward(x, np.ones(4), np.zeros(4), bn_param)
    if bad != "overflow":
        assert not np.isfinite(out).all()  # the output shows it: the loss will diverge
    np.testing.assert_array_equal(bn_param["running_mean"], before[0])
    np.testing.assert_array_equal(bn_param["running_var"], before[1])
    L.batchnorm_forward(rng.randn(8, 4), np.ones(4), np.zeros(4), bn_param)  # next good batch
    assert not np.array_equal(bn_param["running_mean"], before[0])
    assert np.isfinite(bn_param["running_mean"]).all()
    assert np.isfinite(bn_param["running_var"]).all()


def test_empty_batches_in_batchnorm_train_mode_are_refused(rng):
    bn_param = trained_bn_param(rng)
    before = bn_param["running_mean"].copy()
    with pytest.raises(ValueError, match=r"empty batch \(x \(0, 4\)\)"):
        L.batchnorm_forward(np.zeros((0, 4)), np.ones(4), np.zeros(4), bn_param)
    np.testing.assert_array_equal(bn_param["running_mean"], before)
    out, _ = L.batchnorm_forward(np.zeros((0, 4)), np.ones(4), np.zeros(4),
                                 dict(bn_param, mode="test"))
    assert out.shape == (0, 4)  # test mode needs no batch statistics
    spatial = {"mode": "train"}
    with pytest.raises(ValueError, match=r"empty batch \(x \(0, 3, 4, 4\)\)"):
        L.spatial_batchnorm_forward(np.zeros((0, 3, 4, 4)), np.ones(3), np.zeros(3), spatial)
    assert "running_mean" not in spatial


def test_spatial_batchnorm_keeps_its_running_statistics_finite(rng):
    bn_param = {"mode": "train"}
    x = rng.randn(2, 3, 4, 4)
    L.spatial_batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    before = bn_param["running_var"].copy()
    x[1, 2, 0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        L.spatial_batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    np.testing.assert_array_equal(bn_param["running_var"], before)


def test_normalizations_name_the_shapes_of_degenerate_inputs():
    with pytest.raises(ValueError, match=r"D >= 1, got \(3, 0\)"):
        L.layernorm_forward(np.zeros((3, 0)), np.ones(0), np.zeros(0), {})
    out, _ = L.spatial_groupnorm_forward(np.zeros((0, 6, 2, 2)), np.ones((1, 6, 1, 1)),
                                         np.zeros((1, 6, 1, 1)), 3, {})
    assert out.shape == (0, 6, 2, 2)
