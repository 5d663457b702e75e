"""Fast conv/pool layers: equal to the naive ones for any shape, in float32 and float64, with the
compiled extension and with the numpy fallback; the fallback is used when the extension is
missing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvlab import layers as L
from cvlab.gradcheck import rel_error
from cvlab.layers import fast, threads

pytestmark = pytest.mark.numerics  # rerun by `make test-portable`

IMPLEMENTATIONS = fast.available_implementations()
requires_compiled = pytest.mark.skipif("cython" not in IMPLEMENTATIONS,
                                       reason="compiled cvlab.ext not built")


@st.composite
def conv_cases(draw):
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    HH, WW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pad = draw(st.integers(0, 2))
    stride = draw(st.integers(1, 3))
    H = draw(st.integers(max(1, HH - 2 * pad), 9))
    W = draw(st.integers(max(1, WW - 2 * pad), 9))
    seed = draw(st.integers(0, 2**31 - 1))
    return (N, C, H, W), (F, C, HH, WW), {"stride": stride, "pad": pad}, seed


@st.composite
def pool_cases(draw):
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.integers(1, 4))
    H, W = draw(st.integers(ph, 10)), draw(st.integers(pw, 10))
    seed = draw(st.integers(0, 2**31 - 1))
    return (N, C, H, W), {"pool_height": ph, "pool_width": pw, "stride": stride}, seed


def _conv_results(implementation, x, w, b, conv_param, dout):
    if implementation == "naive":
        out, cache = L.conv_forward_naive(x, w, b, conv_param)
        return [out, *L.conv_backward_naive(dout, cache)]
    with fast.use_implementation(implementation):
        out, cache = L.conv_forward_fast(x, w, b, conv_param)
        return [out, *L.conv_backward_fast(dout, cache)]


def _pool_results(implementation, x, pool_param, dout):
    if implementation == "naive":
        out, cache = L.max_pool_forward_naive(x, pool_param)
        return [out, L.max_pool_backward_naive(dout, cache)]
    with fast.use_implementation(implementation):
        out, cache = L.max_pool_forward_fast(x, pool_param)
        return [out, L.max_pool_backward_fast(dout, cache)]


@settings(max_examples=60, deadline=None)
@given(conv_cases())
def test_fast_conv_equals_naive_float64(case):
    x_shape, w_shape, conv_param, seed = case
    rng = np.random.RandomState(seed)
    x, w, b = rng.randn(*x_shape), rng.randn(*w_shape), rng.randn(w_shape[0])
    dout = rng.randn(*L.conv_forward_naive(x, w, b, conv_param)[0].shape)
    naive = _conv_results("naive", x, w, b, conv_param, dout)
    for implementation in IMPLEMENTATIONS:
        for a, f in zip(naive, _conv_results(implementation, x, w, b, conv_param, dout)):
            assert f.shape == a.shape and f.dtype == np.float64
            assert rel_error(a, f) <= 1e-9


@settings(max_examples=30, deadline=None)
@given(conv_cases())
def test_fast_conv_equals_naive_float32_and_stays_float32(case):
    x_shape, w_shape, conv_param, seed = case
    rng = np.random.RandomState(seed)
    x, w, b = (rng.randn(*x_shape).astype(np.float32), rng.randn(*w_shape).astype(np.float32),
               rng.randn(w_shape[0]).astype(np.float32))
    dout = rng.randn(*L.conv_forward_naive(x, w, b, conv_param)[0].shape).astype(np.float32)
    reference = _conv_results("naive", *(a.astype(np.float64) for a in (x, w, b)), conv_param,
                              dout.astype(np.float64))
    for implementation in IMPLEMENTATIONS:
        for a, f in zip(reference, _conv_results(implementation, x, w, b, conv_param, dout)):
            assert f.dtype == np.float32
            np.testing.assert_allclose(f, a, rtol=1e-4, atol=1e-4 * np.abs(a).max() + 1e-6)


@settings(max_examples=60, deadline=None)
@given(pool_cases(), st.sampled_from([np.float32, np.float64]))
def test_fast_max_pool_equals_naive(case, dtype):
    x_shape, pool_param, seed = case
    rng = np.random.RandomState(seed)
    x = rng.randn(*x_shape).astype(dtype)
    if seed % 3 == 0:  # ties, as after a ReLU: the gradient goes to the first maximum
        x = np.maximum(x, 0)
    dout = rng.randn(*L.max_pool_forward_naive(x, pool_param)[0].shape).astype(dtype)
    naive_out, naive_dx = _pool_results("naive", x, pool_param, dout)
    for implementation in IMPLEMENTATIONS:
        out, dx = _pool_results(implementation, x, pool_param, dout)
        assert out.dtype == dx.dtype == dtype
        np.testing.assert_array_equal(out, naive_out)
        # overlapping windows may add two gradients at one input in another order
        tolerance = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(dx, naive_dx, rtol=tolerance, atol=tolerance)


@requires_compiled
@settings(max_examples=40, deadline=None)
@given(conv_cases(), st.sampled_from([np.float32, np.float64]))
def test_numpy_fallback_equals_compiled_kernels(case, dtype):
    x_shape, w_shape, conv_param, seed = case
    rng = np.random.RandomState(seed)
    x = rng.randn(*x_shape).astype(dtype)
    _, _, HH, WW = w_shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    H_out = 1 + (x_shape[2] + 2 * pad - HH) // stride
    W_out = 1 + (x_shape[3] + 2 * pad - WW) // stride
    compiled, numpy_ = fast.KERNELS["cython"], fast.KERNELS["numpy"]
    cols = compiled.im2col(x, HH, WW, pad, stride, H_out, W_out)
    np.testing.assert_array_equal(cols, numpy_.im2col(x, HH, WW, pad, stride, H_out, W_out))
    assert cols.dtype == dtype
    dcols = rng.randn(*cols.shape).astype(dtype)
    args = (x_shape[0], x_shape[1], x_shape[2], x_shape[3], HH, WW, pad, stride, H_out, W_out)
    np.testing.assert_allclose(compiled.col2im(dcols, *args), numpy_.col2im(dcols, *args),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_layers_report_an_implementation():
    assert L.implementation() in ("cython", "numpy")
    with L.use_implementation("numpy"):
        assert L.implementation() == "numpy"
    with pytest.raises(ValueError, match="not available"):
        with L.use_implementation("fortran"):
            pass


def test_fallback_is_used_when_the_extension_is_missing():
    code = ("import sys; sys.modules['cvlab.ext.im2col'] = None; "
            "import numpy as np, cvlab.layers as L; print(L.implementation()); "
            "x = np.random.randn(2, 3, 6, 6); w = np.random.randn(2, 3, 3, 3); "
            "out, cache = L.conv_forward_fast(x, w, np.zeros(2), {'stride': 1, 'pad': 1}); "
            "ref, _ = L.conv_forward_naive(x, w, np.zeros(2), {'stride': 1, 'pad': 1}); "
            "print(float(abs(out - ref).max()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    implementation, error = result.stdout.split()
    assert implementation == "numpy"
    assert float(error) < 1e-12


@requires_compiled
def test_environment_variable_forces_the_fallback():
    code = "import cvlab.layers as L; print(L.implementation())"
    for value, expected in (("numpy", "numpy"), ("", "cython")):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True, env={**_env(), "CVLAB_FAST_LAYERS": value})
        assert result.stdout.strip() == expected


def _env():
    import os

    return dict(os.environ)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("x_shape, w_shape, conv_param, chunks", [
    # the course's shape: the whole batch's columns in one GEMM of 4 MiB
    ((100, 3, 31, 31), (25, 3, 3, 3), {"stride": 2, "pad": 1}, 1),
    # ThreeLayerConvNet: 0.6 MB of columns per image, 6 images per GEMM
    ((50, 3, 32, 32), (32, 3, 7, 7), {"stride": 1, "pad": 3}, 9),
])
def test_fast_conv_gemms_are_large_and_float32(implementation, workers, x_shape, w_shape,
                                               conv_param, chunks, monkeypatch):
    """One large GEMM per block of images and no hidden float64 copy: every array the GEMMs
    see is float32 when the input is; the blocks are the same for any number of threads."""
    rng = np.random.RandomState(0)
    x = rng.randn(*x_shape).astype(np.float32)
    w = rng.randn(*w_shape).astype(np.float32)
    b = np.zeros(w_shape[0], np.float32)
    calls = []
    real_matmul = np.matmul

    def spy(a, b_, *args, **kwargs):
        calls.append((a.dtype, b_.dtype, a.shape, b_.shape))
        return real_matmul(a, b_, *args, **kwargs)

    monkeypatch.setattr(fast, "CHUNK_BYTES", 4 << 20)
    monkeypatch.setattr(threads, "threads", lambda: workers)
    monkeypatch.setattr(fast.np, "matmul", spy)
    with fast.use_implementation(implementation):
        out, cache = L.conv_forward_fast(x, w, b, conv_param)
    reference, _ = L.conv_forward_naive(x[:2], w, b, conv_param)
    np.testing.assert_allclose(out[:2], reference, rtol=1e-4, atol=1e-4)
    assert out.dtype == np.float32
    F, C, HH, WW = w_shape
    N = x_shape[0]
    per_chunk = min(N, (4 << 20) // (C * HH * WW * out[0, 0].size * 4))
    assert len(calls) == -(-N // per_chunk) == chunks
    for a_dtype, b_dtype, a_shape, b_shape in calls:
        assert a_dtype == b_dtype == np.float32
        assert a_shape == (F, C * HH * WW) and b_shape[0] == C * HH * WW
    assert sum(b_shape[1] for *_, b_shape in calls) == out[:, 0].size


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_results_do_not_depend_on_the_number_of_threads(implementation, monkeypatch):
    """Bit for bit: the blocks and the order their partial dw are added in are fixed."""
    rng = np.random.RandomState(3)
    x, w, b = rng.randn(7, 3, 9, 9), rng.randn(4, 3, 3, 3), rng.randn(4)
    dout = rng.randn(7, 4, 9, 9)
    conv_param = {"stride": 1, "pad": 1}
    results = {}
    monkeypatch.setattr(fast, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(fast, "CHUNK_BYTES", 2000)  # several blocks
    with fast.use_implementation(implementation):
        for workers in (1, 2, 3):
            with threads.use_threads(workers):
                out, cache = L.conv_forward_fast(x, w, b, conv_param)
                results[workers] = [out, *L.conv_backward_fast(dout, cache)]
    for workers in (2, 3):
        for a, b_ in zip(results[1], results[workers]):
            np.testing.assert_array_equal(a, b_)


def test_input_gradient_can_be_skipped():
    rng = np.random.RandomState(4)
    x, w, b = rng.randn(3, 2, 6, 6), rng.randn(4, 2, 3, 3), rng.randn(4)
    out, cache = L.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    dout = rng.randn(*out.shape)
    dx, dw, db = L.conv_backward_fast(dout, cache)
    skipped = L.conv_backward_fast(dout, cache, compute_dx=False)
    assert skipped[0] is None and dx.shape == x.shape
    np.testing.assert_array_equal(skipped[1], dw)
    np.testing.assert_array_equal(skipped[2], db)
