"""The fused conv - relu - max pool sandwich and the mask-free relu backward: equal to the
naive layers for any shapes, pool windows and strides, in float32 and float64, with the
compiled kernels and with the numpy fallback; the input gradient can be skipped."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvlab import layers as L
from cvlab.layers import fast

IMPLEMENTATIONS = fast.available_implementations()


@st.composite
def sandwich_cases(draw):
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    HH, WW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pad, stride = draw(st.integers(0, 2)), draw(st.integers(1, 2))
    ph, pw, pool_stride = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    # the conv output must hold one pool window
    H = draw(st.integers(max(1, HH - 2 * pad) + stride * (ph - 1), 11))
    W = draw(st.integers(max(1, WW - 2 * pad) + stride * (pw - 1), 11))
    seed = draw(st.integers(0, 2**31 - 1))
    return ((N, C, H, W), (F, C, HH, WW), {"stride": stride, "pad": pad},
            {"pool_height": ph, "pool_width": pw, "stride": pool_stride}, seed)


def _naive(x, w, b, conv_param, pool_param, dout):
    a, conv_cache = L.conv_forward_naive(x, w, b, conv_param)
    s, relu_cache = L.relu_forward(a)
    out, pool_cache = L.max_pool_forward_naive(s, pool_param)
    ds = L.max_pool_backward_naive(dout, pool_cache)
    return [out, *L.conv_backward_naive(L.relu_backward(ds, relu_cache), conv_cache)]


def _draw(case, dtype):
    x_shape, w_shape, conv_param, pool_param, seed = case
    rng = np.random.RandomState(seed)
    x = rng.randn(*x_shape).astype(dtype)
    w = rng.randn(*w_shape).astype(dtype)
    b = rng.randn(w_shape[0]).astype(dtype)
    if seed % 3 == 0:  # many exact zeros after the relu: ties inside the pool windows
        b = -np.abs(b) - 10
    out, _ = L.conv_relu_pool_forward(x, w, b, conv_param, pool_param)
    dout = rng.randn(*out.shape).astype(dtype)
    return x, w, b, conv_param, pool_param, dout


@settings(max_examples=60, deadline=None)
@given(sandwich_cases(), st.sampled_from([np.float64, np.float32]))
def test_fused_sandwich_equals_the_naive_layers(case, dtype):
    x, w, b, conv_param, pool_param, dout = _draw(case, dtype)
    wide = [a.astype(np.float64) for a in (x, w, b)]
    reference = _naive(*wide, conv_param, pool_param, dout.astype(np.float64))
    for implementation in IMPLEMENTATIONS:
        with L.use_implementation(implementation):
            out, cache = L.conv_relu_pool_forward(x, w, b, conv_param, pool_param)
            dx, dw, db = L.conv_relu_pool_backward(dout, cache)
        assert cache[0] == "fused"
        for got, want in zip((out, dx, dw, db), reference):
            assert got.dtype == dtype and got.shape == want.shape
            if dtype == np.float64:
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
            else:
                np.testing.assert_allclose(got, want, rtol=1e-4,
                                           atol=1e-4 * np.abs(want).max() + 1e-6)


@settings(max_examples=40, deadline=None)
@given(sandwich_cases(), st.sampled_from([np.float64, np.float32]))
def test_fused_pooling_and_routing_are_exactly_the_layers(case, dtype):
    """Given the same conv output, the pooled values, the windows' maxima and the routed
    gradient are the very numbers of relu_forward - max_pool_forward_fast and back."""
    x, w, b, conv_param, pool_param, dout = _draw(case, dtype)
    a, _ = L.conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = L.relu_forward(a)
    pooled, pool_cache = L.max_pool_forward_fast(s, pool_param)
    da = L.relu_backward(L.max_pool_backward_fast(dout, pool_cache), relu_cache)
    F, P = a.shape[1], a.shape[2] * a.shape[3]
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N = a.shape[0]
    rows = np.ascontiguousarray(a.transpose(1, 0, 2, 3).reshape(F, N * P))  # the GEMM layout
    for implementation in IMPLEMENTATIONS:
        kernels = fast.KERNELS[implementation]
        got = np.empty_like(pooled)
        argmax = np.empty(pooled.shape, np.uint8)
        kernels.bias_relu_pool(rows, np.zeros_like(b), a.shape[3], ph, pw, stride, got, argmax)
        np.testing.assert_array_equal(got, pooled)
        drows = np.empty((F, N * P), dtype)
        db = np.empty((N, F))
        kernels.relu_pool_backward(dout, got, argmax, a.shape[3], ph, pw, stride, drows, db)
        routed = drows.reshape(F, N, *a.shape[2:]).transpose(1, 0, 2, 3)
        if ph <= stride and pw <= stride:  # windows apart: every position gets one gradient
            np.testing.assert_array_equal(routed, da)
        else:  # overlapping windows add up their gradients, in another order
            np.testing.assert_allclose(routed, da, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(db, da.sum(axis=(2, 3)), rtol=1e-5, atol=1e-5)


def test_skipping_the_input_gradient_keeps_dw_and_db():
    rng = np.random.RandomState(1)
    x, w, b = rng.randn(4, 3, 12, 12), rng.randn(5, 3, 5, 5), rng.randn(5)
    conv, pool = {"stride": 1, "pad": 2}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = L.conv_relu_pool_forward(x, w, b, conv, pool)
    dout = rng.randn(*out.shape)
    dx, dw, db = L.conv_relu_pool_backward(dout, cache)
    no_dx = L.conv_relu_pool_backward(dout, cache, compute_dx=False)
    assert no_dx[0] is None and dx.shape == x.shape
    np.testing.assert_array_equal(no_dx[1], dw)
    np.testing.assert_array_equal(no_dx[2], db)
    # the course's signature stays the default
    assert len(L.conv_relu_pool_backward(dout, cache)) == 3


def test_windows_too_large_for_the_fused_kernels_run_the_layers():
    rng = np.random.RandomState(2)
    x, w, b = rng.randn(1, 1, 20, 20), rng.randn(2, 1, 3, 3), rng.randn(2)
    pool = {"pool_height": 17, "pool_width": 16, "stride": 1}  # 272 positions
    out, cache = L.conv_relu_pool_forward(x, w, b, {"stride": 1, "pad": 1}, pool)
    assert cache[0] == "layers"
    reference = _naive(x, w, b, {"stride": 1, "pad": 1}, pool, np.ones_like(out))
    got = [out, *L.conv_relu_pool_backward(np.ones_like(out), cache)]
    for a, want in zip(got, reference):
        np.testing.assert_allclose(a, want, rtol=1e-10, atol=1e-10)


def test_bad_upstream_gradient_shape_is_refused():
    rng = np.random.RandomState(3)
    out, cache = L.conv_relu_pool_forward(rng.randn(2, 1, 6, 6), rng.randn(2, 1, 3, 3),
                                          np.zeros(2), {"stride": 1, "pad": 1},
                                          {"pool_height": 2, "pool_width": 2, "stride": 2})
    with pytest.raises(ValueError, match=r"dout \(2, 2, 2, 2\).*\(2, 2, 3, 3\)"):
        L.conv_relu_pool_backward(np.ones((2, 2, 2, 2)), cache)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([np.float32, np.float64]),
       st.booleans())
def test_relu_backward_is_the_masked_product_bit_for_bit(seed, dtype, in_place):
    rng = np.random.RandomState(seed)
    shape = tuple(rng.randint(1, 6, size=rng.randint(1, 4)))
    x = rng.randn(*shape).astype(dtype)
    dout = (rng.randn(*shape) * 10).astype(dtype)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], dtype)
    x.flat[rng.randint(x.size)] = rng.choice(specials)
    dout.flat[rng.randint(dout.size)] = rng.choice(specials)
    with np.errstate(invalid="ignore"):  # inf * 0
        expected = dout * (x > 0)
    for implementation in IMPLEMENTATIONS:
        upstream = dout.copy()
        with L.use_implementation(implementation), np.errstate(invalid="ignore"):
            got = L.relu_backward(upstream, x, out=upstream if in_place else None)
        assert got.dtype == dtype and got.shape == x.shape
        np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))
        if in_place:
            assert got is upstream
        else:
            np.testing.assert_array_equal(upstream, dout)  # the caller's array untouched


def test_relu_backward_keeps_other_dtypes_and_refuses_other_shapes():
    x = np.array([[-1.0, 2.0]])
    np.testing.assert_array_equal(L.relu_backward(np.array([[3, 4]]), x), [[0, 4]])
    np.testing.assert_array_equal(
        L.relu_backward(np.ones((1, 2), np.float32), x), np.array([[0, 1]], np.float32))
    with pytest.raises(ValueError, match=r"dout \(2,\).*\(1, 2\)"):
        L.relu_backward(np.ones(2), x)
