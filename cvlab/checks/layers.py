"""Gradient checks of the numpy layers, registered for `cvlab gradcheck layer=<name>|all`.

Each check builds seeded float64 inputs with the course's small shapes, computes the analytic
gradients and compares them with centered numeric differences (cvlab.gradcheck) using the
course's relative error (the maximum over entries). Tolerances start from what the course
prints for correct code and are widened to the next power of ten that holds for seeds 0..39:
the maximum is set by entries whose gradient is nearly zero, where round-off in the numeric
difference dominates (normalization dx up to ~6e-6). A wrong gradient gives 1e-3 or more.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cvlab import layers as L
from cvlab.checks import CheckRow, register
from cvlab.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error

Array = np.ndarray
ZERO_GRADIENT_TOLERANCE = 1e-8
# normalization layers: dx is the noisy one (see above); the parameters are checked tightly
NORM_TOLERANCE = {"x": 1e-5, "gamma": 1e-7, "beta": 1e-7}


def _numeric(forward: Callable[..., Array], inputs: dict[str, Array], dout: Array,
             analytic: dict[str, Array], tolerance: float | dict[str, float],
             zero: tuple[str, ...] = ()) -> list[CheckRow]:
    """Rows comparing analytic[name] with the numeric gradient of sum(forward(**inputs) * dout)
    with respect to each input named in `analytic`.

    Inputs named in `zero` have a true gradient of exactly zero (a bias followed by batchnorm):
    a relative error of two round-off values means nothing, so their row is the absolute error.
    `tolerance` is one bound for all inputs or a bound per input name.
    """
    rows = []
    for name, grad in analytic.items():
        def f(value: Array, name: str = name) -> Array:
            return forward(**{**inputs, name: value})

        numeric = eval_numerical_gradient_array(f, inputs[name], dout)
        if name in zero:
            error = float(np.max(np.abs(grad - numeric)))
            rows.append(CheckRow(f"d{name} (zero; abs error)", error, ZERO_GRADIENT_TOLERANCE))
        else:
            bound = tolerance[name] if isinstance(tolerance, dict) else tolerance
            rows.append(CheckRow(f"d{name}", rel_error(grad, numeric), bound))
    return rows


@register("affine")
def check_affine(rng: np.random.RandomState) -> list[CheckRow]:
    x, w, b = rng.randn(10, 2, 3), rng.randn(6, 5), rng.randn(5)
    out, cache = L.affine_forward(x, w, b)
    dout = rng.randn(*out.shape)
    dx, dw, db = L.affine_backward(dout, cache)
    return _numeric(lambda x, w, b: L.affine_forward(x, w, b)[0], {"x": x, "w": w, "b": b},
                    dout, {"x": dx, "w": dw, "b": db}, 1e-7)


@register("relu")
def check_relu(rng: np.random.RandomState) -> list[CheckRow]:
    x = rng.randn(10, 10)
    x += np.sign(x) * 1e-3  # keep the numeric differences off the kink at 0
    out, cache = L.relu_forward(x)
    dout = rng.randn(*out.shape)
    dx = L.relu_backward(dout, cache)
    return _numeric(lambda x: L.relu_forward(x)[0], {"x": x}, dout, {"x": dx}, 1e-8)


def _loss_check(loss_fn: Callable, rng: np.random.RandomState, tolerance: float) -> list[CheckRow]:
    num_classes, num_inputs = 10, 50
    x = 0.001 * rng.randn(num_inputs, num_classes)
    y = rng.randint(num_classes, size=num_inputs)
    loss, dx = loss_fn(x, y)
    numeric = eval_numerical_gradient(lambda x: loss_fn(x, y)[0], x, verbose=False)
    rows = [CheckRow("dx", rel_error(dx, numeric), tolerance)]
    # Stability: huge logits give a finite loss and gradient.
    big_loss, big_dx = loss_fn(1e4 * rng.randn(num_inputs, num_classes), y)
    finite = bool(np.isfinite(big_loss) and np.all(np.isfinite(big_dx)))
    rows.append(CheckRow("finite at logits 1e4", 0.0 if finite else float("inf"), 0.0))
    return rows


@register("softmax")
def check_softmax(rng: np.random.RandomState) -> list[CheckRow]:
    return _loss_check(L.softmax_loss, rng, 1e-7)


@register("svm")
def check_svm(rng: np.random.RandomState) -> list[CheckRow]:
    return _loss_check(L.svm_loss, rng, 1e-7)


def _batchnorm_rows(rng: np.random.RandomState, backward: Callable) -> list[CheckRow]:
    N, D = 4, 5
    x = 5 * rng.randn(N, D) + 12
    gamma, beta = rng.randn(D), rng.randn(D)
    dout = rng.randn(N, D)

    def forward(x: Array, gamma: Array, beta: Array) -> Array:
        return L.batchnorm_forward(x, gamma, beta, {"mode": "train"})[0]

    _, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = backward(dout, cache)
    return _numeric(forward, {"x": x, "gamma": gamma, "beta": beta}, dout,
                    {"x": dx, "gamma": dgamma, "beta": dbeta}, NORM_TOLERANCE)


@register("batchnorm")
def check_batchnorm(rng: np.random.RandomState) -> list[CheckRow]:
    return _batchnorm_rows(rng, L.batchnorm_backward)


@register("batchnorm_alt")
def check_batchnorm_alt(rng: np.random.RandomState) -> list[CheckRow]:
    rows = _batchnorm_rows(rng, L.batchnorm_backward_alt)
    x, gamma, beta = rng.randn(100, 500), rng.randn(500), rng.randn(500)
    dout = rng.randn(100, 500)
    _, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    graph = L.batchnorm_backward(dout, cache)
    alt = L.batchnorm_backward_alt(dout, cache)
    for name, a, b in zip(("dx", "dgamma", "dbeta"), graph, alt):
        rows.append(CheckRow(f"{name} alt vs graph", rel_error(a, b), 1e-8))
    return rows


@register("layernorm")
def check_layernorm(rng: np.random.RandomState) -> list[CheckRow]:
    N, D = 4, 5
    x = 5 * rng.randn(N, D) + 12
    gamma, beta = rng.randn(D), rng.randn(D)
    dout = rng.randn(N, D)

    def forward(x: Array, gamma: Array, beta: Array) -> Array:
        return L.layernorm_forward(x, gamma, beta, {})[0]

    _, cache = L.layernorm_forward(x, gamma, beta, {})
    dx, dgamma, dbeta = L.layernorm_backward(dout, cache)
    return _numeric(forward, {"x": x, "gamma": gamma, "beta": beta}, dout,
                    {"x": dx, "gamma": dgamma, "beta": dbeta}, NORM_TOLERANCE)


@register("dropout")
def check_dropout(rng: np.random.RandomState) -> list[CheckRow]:
    x = rng.randn(10, 10) + 10
    dout = rng.randn(*x.shape)
    param = {"mode": "train", "p": 0.2, "seed": 123}
    _, cache = L.dropout_forward(x, param)
    dx = L.dropout_backward(dout, cache)
    return _numeric(lambda x: L.dropout_forward(x, param)[0], {"x": x}, dout, {"x": dx}, 1e-8)


def _conv_inputs(rng: np.random.RandomState) -> tuple[Array, Array, Array, dict]:
    x, w, b = rng.randn(4, 3, 5, 5), rng.randn(2, 3, 3, 3), rng.randn(2)
    return x, w, b, {"stride": 1, "pad": 1}


def _conv_rows(rng: np.random.RandomState, forward: Callable,
               backward: Callable) -> tuple[list[CheckRow], tuple]:
    x, w, b, conv_param = _conv_inputs(rng)
    out, cache = forward(x, w, b, conv_param)
    dout = rng.randn(*out.shape)
    dx, dw, db = backward(dout, cache)
    rows = _numeric(lambda x, w, b: forward(x, w, b, conv_param)[0], {"x": x, "w": w, "b": b},
                    dout, {"x": dx, "w": dw, "b": db}, 1e-6)
    return rows, (x, w, b, conv_param, dout, out, dx, dw, db)


@register("conv")
def check_conv(rng: np.random.RandomState) -> list[CheckRow]:
    return _conv_rows(rng, L.conv_forward_naive, L.conv_backward_naive)[0]


@register("conv_fast")
def check_conv_fast(rng: np.random.RandomState) -> list[CheckRow]:
    rows, (x, w, b, _, _, _, _, _, _) = _conv_rows(rng, L.conv_forward_fast, L.conv_backward_fast)
    # Fast vs naive on the course's comparison shape (stride 2, pad 1).
    x, w, b = rng.randn(10, 3, 31, 31), rng.randn(25, 3, 3, 3), rng.randn(25)
    conv_param = {"stride": 2, "pad": 1}
    out_naive, cache_naive = L.conv_forward_naive(x, w, b, conv_param)
    out_fast, cache_fast = L.conv_forward_fast(x, w, b, conv_param)
    dout = rng.randn(*out_naive.shape)
    naive = L.conv_backward_naive(dout, cache_naive)
    fast = L.conv_backward_fast(dout, cache_fast)
    rows.append(CheckRow("out fast vs naive", rel_error(out_naive, out_fast), 1e-9))
    for name, a, f in zip(("dx", "dw", "db"), naive, fast):
        rows.append(CheckRow(f"{name} fast vs naive", rel_error(a, f), 1e-9))
    return rows


def _pool_rows(rng: np.random.RandomState, forward: Callable,
               backward: Callable) -> list[CheckRow]:
    x = rng.randn(3, 2, 8, 8)
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = forward(x, pool_param)
    dout = rng.randn(*out.shape)
    dx = backward(dout, cache)
    return _numeric(lambda x: forward(x, pool_param)[0], {"x": x}, dout, {"x": dx}, 1e-8)


@register("maxpool")
def check_maxpool(rng: np.random.RandomState) -> list[CheckRow]:
    return _pool_rows(rng, L.max_pool_forward_naive, L.max_pool_backward_naive)


@register("maxpool_fast")
def check_maxpool_fast(rng: np.random.RandomState) -> list[CheckRow]:
    rows = _pool_rows(rng, L.max_pool_forward_fast, L.max_pool_backward_fast)
    x = rng.randn(20, 3, 17, 15)  # overlapping 3x3 windows with stride 2, not tiling
    pool_param = {"pool_height": 3, "pool_width": 3, "stride": 2}
    out_naive, cache_naive = L.max_pool_forward_naive(x, pool_param)
    out_fast, cache_fast = L.max_pool_forward_fast(x, pool_param)
    dout = rng.randn(*out_naive.shape)
    dx_naive = L.max_pool_backward_naive(dout, cache_naive)
    dx_fast = L.max_pool_backward_fast(dout, cache_fast)
    rows.append(CheckRow("out fast vs naive", rel_error(out_naive, out_fast), 1e-9))
    rows.append(CheckRow("dx fast vs naive", rel_error(dx_naive, dx_fast), 1e-9))
    return rows


@register("spatial_batchnorm")
def check_spatial_batchnorm(rng: np.random.RandomState) -> list[CheckRow]:
    N, C, H, W = 2, 3, 4, 5
    x = 5 * rng.randn(N, C, H, W) + 12
    gamma, beta = rng.randn(C), rng.randn(C)
    dout = rng.randn(N, C, H, W)

    def forward(x: Array, gamma: Array, beta: Array) -> Array:
        return L.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})[0]

    _, cache = L.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = L.spatial_batchnorm_backward(dout, cache)
    return _numeric(forward, {"x": x, "gamma": gamma, "beta": beta}, dout,
                    {"x": dx, "gamma": dgamma, "beta": dbeta}, NORM_TOLERANCE)


@register("spatial_groupnorm")
def check_spatial_groupnorm(rng: np.random.RandomState) -> list[CheckRow]:
    N, C, H, W, G = 2, 6, 4, 5, 2
    x = 5 * rng.randn(N, C, H, W) + 12
    gamma, beta = rng.randn(1, C, 1, 1), rng.randn(1, C, 1, 1)
    dout = rng.randn(N, C, H, W)

    def forward(x: Array, gamma: Array, beta: Array) -> Array:
        return L.spatial_groupnorm_forward(x, gamma, beta, G, {})[0]

    _, cache = L.spatial_groupnorm_forward(x, gamma, beta, G, {})
    dx, dgamma, dbeta = L.spatial_groupnorm_backward(dout, cache)
    return _numeric(forward, {"x": x, "gamma": gamma, "beta": beta}, dout,
                    {"x": dx, "gamma": dgamma, "beta": dbeta}, NORM_TOLERANCE)


@register("affine_relu")
def check_affine_relu(rng: np.random.RandomState) -> list[CheckRow]:
    x, w, b = rng.randn(2, 3, 4), rng.randn(12, 10), rng.randn(10)
    out, cache = L.affine_relu_forward(x, w, b)
    dout = rng.randn(*out.shape)
    dx, dw, db = L.affine_relu_backward(dout, cache)
    return _numeric(lambda x, w, b: L.affine_relu_forward(x, w, b)[0], {"x": x, "w": w, "b": b},
                    dout, {"x": dx, "w": dw, "b": db}, 1e-7)


@register("affine_norm_relu")
def check_affine_norm_relu(rng: np.random.RandomState) -> list[CheckRow]:
    rows = []
    x, w, b = rng.randn(4, 3, 2), rng.randn(6, 7), rng.randn(7)
    gamma, beta = rng.randn(7), rng.randn(7)
    dout = rng.randn(4, 7)
    for normalization in ("batchnorm", "layernorm"):
        dropout_param = {"mode": "train", "p": 0.75, "seed": 1}

        def forward(x: Array, w: Array, b: Array, gamma: Array, beta: Array,
                    normalization: str = normalization, dropout_param: dict = dropout_param
                    ) -> Array:
            return L.affine_norm_relu_forward(x, w, b, gamma, beta, {"mode": "train"},
                                              normalization, dropout_param)[0]

        _, cache = L.affine_norm_relu_forward(x, w, b, gamma, beta, {"mode": "train"},
                                              normalization, dropout_param)
        dx, dw, db, dgamma, dbeta = L.affine_norm_relu_backward(dout, cache)
        inputs = {"x": x, "w": w, "b": b, "gamma": gamma, "beta": beta}
        analytic = {"x": dx, "w": dw, "b": db, "gamma": dgamma, "beta": dbeta}
        zero = ("b",) if normalization == "batchnorm" else ()
        tolerance = {"x": 1e-6, "w": 1e-5, "b": 1e-6, "gamma": 1e-7, "beta": 1e-7}
        for row in _numeric(forward, inputs, dout, analytic, tolerance, zero):
            rows.append(CheckRow(f"{row.what} ({normalization}+dropout)", row.rel_error,
                                 row.tolerance))
    return rows


@register("conv_relu")
def check_conv_relu(rng: np.random.RandomState) -> list[CheckRow]:
    x, w, b, conv_param = _conv_inputs(rng)
    out, cache = L.conv_relu_forward(x, w, b, conv_param)
    dout = rng.randn(*out.shape)
    dx, dw, db = L.conv_relu_backward(dout, cache)
    return _numeric(lambda x, w, b: L.conv_relu_forward(x, w, b, conv_param)[0],
                    {"x": x, "w": w, "b": b}, dout, {"x": dx, "w": dw, "b": db}, 1e-5)


@register("conv_relu_pool")
def check_conv_relu_pool(rng: np.random.RandomState) -> list[CheckRow]:
    x, w, b = rng.randn(2, 3, 16, 16), rng.randn(3, 3, 3, 3), rng.randn(3)
    conv_param = {"stride": 1, "pad": 1}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = L.conv_relu_pool_forward(x, w, b, conv_param, pool_param)
    dout = rng.randn(*out.shape)
    dx, dw, db = L.conv_relu_pool_backward(dout, cache)
    return _numeric(lambda x, w, b: L.conv_relu_pool_forward(x, w, b, conv_param, pool_param)[0],
                    {"x": x, "w": w, "b": b}, dout, {"x": dx, "w": dw, "b": db}, 1e-6)


@register("conv_bn_relu")
def check_conv_bn_relu(rng: np.random.RandomState) -> list[CheckRow]:
    x, w, b, conv_param = _conv_inputs(rng)
    gamma, beta = rng.randn(2), rng.randn(2)

    def forward(x: Array, w: Array, b: Array, gamma: Array, beta: Array) -> Array:
        return L.conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, {"mode": "train"})[0]

    out, cache = L.conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, {"mode": "train"})
    dout = rng.randn(*out.shape)
    dx, dw, db, dgamma, dbeta = L.conv_bn_relu_backward(dout, cache)
    return _numeric(forward, {"x": x, "w": w, "b": b, "gamma": gamma, "beta": beta}, dout,
                    {"x": dx, "w": dw, "b": db, "gamma": dgamma, "beta": dbeta},
                    {"x": 1e-5, "w": 1e-6, "gamma": 1e-7, "beta": 1e-7}, ("b",))
