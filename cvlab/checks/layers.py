"""Gradient checks of the numpy layers, registered for `cvlab gradcheck layer=<name>|all`.

Each check builds seeded float64 inputs with the course's small shapes, computes the analytic
gradients and compares them with centered differences at the course's step h = 1e-5
(cvlab.gradcheck). How each row is judged follows from the error model (cvlab.gradcheck,
docs/gradcheck.md): a numeric entry is off by ~1e-10 (rounding ~eps F / h plus truncation
h^2 |f3| / 6, inputs and upstream gradients of order 1), whatever the size of the entry.
- Elementwise layers (relu, dropout, max pool) and the losses: that error scales with the
  entry itself, so the course's max-over-entries relative error is stable (~1e-11..1e-8) and
  is kept, with bound 1e-8 (losses: 1e-6, their loss F ~ 2.3 meets entries ~1/(N C)).
- Everything else: an entry near zero (a sum that cancels) would inflate the course's maximum
  on an unlucky seed or BLAS kernel, so the row is judged on the tensor's norm error, bound
  1e-7 (the model gives 1e-10..1e-9 here). Two analytic computations of the same value (fast
  vs naive, batchnorm alt vs graph) differ by rounding only: norm error below 1e-12.
- Kinks: relu and max pool inputs are kept >= 1e-3 away from their kinks where the input is
  the checked tensor itself (relu, max pool); in the sandwiches, entries whose step crosses a
  kink are detected and left out (cvlab.gradcheck.numerical_gradient_off_kinks).
- Scale: the sandwiches that normalize before a relu draw gamma ~ 1 and beta ~ +-0.5, so the
  gradient is not far below the rounding of f (`_scale_and_shift`).
- A bias followed by batchnorm has a gradient of exactly zero: its row bounds max |numeric|
  by 100x the rounding of the centered difference (cvlab.checks.zero_gradient_tolerance).

Every check takes the layers it checks as `L` (default: cvlab.layers, looked up at call time);
`cvlab gradcheck impl=<folder>` passes stand-ins of a student's functions (cvlab.impl.remote),
so their backward passes are judged by the same inputs, error model and bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from cvlab import layers as cvlab_layers
from cvlab.checks import (
    ANALYTIC_TOLERANCE,
    ELEMENTWISE_TOLERANCE,
    NUMERIC_TOLERANCE,
    CheckRow,
    compare_gradients,
    register,
    zero_gradient_tolerance,
)
from cvlab.gradcheck import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    numerical_gradient_off_kinks,
)

Array = np.ndarray
# Losses: rounding eps * loss / h (~5e-11 for a loss of ~2.3) against entries of ~1/(N C)
# (2e-3 at N = 50, C = 10): ~3e-8 relative at most; 1e-6 leaves 30x to the model.
LOSS_TOLERANCE = 1e-6


def _numeric(forward: Callable[..., Array], inputs: dict[str, Array], dout: Array,
             analytic: dict[str, Array], metric: str = "norm",
             tolerance: float = NUMERIC_TOLERANCE, zero: tuple[str, ...] = (),
             kinks: bool = False) -> list[CheckRow]:
    """Rows comparing analytic[name] with the numeric gradient of sum(forward(**inputs) * dout)
    with respect to each input named in `analytic`.

    Inputs named in `zero` have a true gradient of exactly zero (a bias followed by batchnorm):
    their row is max |analytic - numeric| against zero_gradient_tolerance. With `kinks`, the
    entries whose numeric step crosses a kink of forward (relu, max) are left out.
    """
    f_size = float(np.sum(np.abs(forward(**inputs) * dout)))
    rows = []
    for name, grad in analytic.items():
        def f(value: Array, name: str = name) -> Array:
            return forward(**{**inputs, name: value})

        kinked = None
        if kinks:
            numeric, kinked = numerical_gradient_off_kinks(f, inputs[name], dout)
        else:
            numeric = eval_numerical_gradient_array(f, inputs[name], dout)
        if name in zero:
            rows.append(compare_gradients(f"d{name} (zero)", grad, numeric,
                                          zero_gradient_tolerance(f_size), "abs", kinked))
        else:
            rows.append(compare_gradients(f"d{name}", grad, numeric, tolerance, metric, kinked))
    return rows


numeric_rows = _numeric  # the same rows for other inputs (cvlab.impl: a student's functions)


def _away_from_kinks(rng: np.random.RandomState, *shape: int) -> Array:
    """Standard normal values, all distinct and each moved >= 1e-3 away from zero and (after
    sorting) from its neighbours, so that no step of h = 1e-5 reaches a kink of relu or max."""
    size = int(np.prod(shape))
    values = np.sort(rng.randn(size))
    values += 2e-3 * np.arange(size)  # neighbours >= 2e-3 apart
    values -= np.median(values)
    values += np.sign(values) * 1e-3 + (values == 0) * 1e-3
    return rng.permutation(values).reshape(shape)


def _scale_and_shift(rng: np.random.RandomState, size: int) -> tuple[Array, Array]:
    """gamma ~ 1 +- 0.2, beta ~ +-0.5 for a normalization followed by relu: about half the
    units pass. (A gamma near 0, or a large negative beta that kills every unit, leaves dx
    smaller than the rounding of the centered difference: 2.8e-7 norm error at seed 69.)"""
    return 1 + 0.2 * rng.randn(size), 0.5 * rng.randn(size)


@register("affine")
def check_affine(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    x, w, b = rng.randn(10, 2, 3), rng.randn(6, 5), rng.randn(5)
    out, cache = L.affine_forward(x, w, b)
    dout = rng.randn(*out.shape)
    dx, dw, db = L.affine_backward(dout, cache)
    return _numeric(lambda x, w, b: L.affine_forward(x, w, b)[0], {"x": x, "w": w, "b": b},
                    dout, {"x": dx, "w": dw, "b": db})


@register("relu")
def check_relu(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    x = _away_from_kinks(rng, 10, 10)
    out, cache = L.relu_forward(x)
    dout = rng.randn(*out.shape)
    dx = L.relu_backward(dout, cache)
    return _numeric(lambda x: L.relu_forward(x)[0], {"x": x}, dout, {"x": dx}, "rel",
                    ELEMENTWISE_TOLERANCE)


def _loss_check(loss_fn: Callable, rng: np.random.RandomState) -> list[CheckRow]:
    num_classes, num_inputs = 10, 50
    x = 0.001 * rng.randn(num_inputs, num_classes)  # svm margins 1 +- 0.01: no hinge kink
    y = rng.randint(num_classes, size=num_inputs)
    loss, dx = loss_fn(x, y)
    numeric = eval_numerical_gradient(lambda x: loss_fn(x, y)[0], x, verbose=False)
    rows = [compare_gradients("dx", dx, numeric, LOSS_TOLERANCE, "rel")]
    # Stability: huge logits give a finite loss and gradient.
    big_loss, big_dx = loss_fn(1e4 * rng.randn(num_inputs, num_classes), y)
    finite = bool(np.isfinite(big_loss) and np.all(np.isfinite(big_dx)))
    rows.append(CheckRow("finite at logits 1e4", 0.0 if finite else float("inf"), 0.0,
                         "finite"))
    return rows


@register("softmax")
def check_softmax(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    return _loss_check(L.softmax_loss, rng)


@register("svm")
def check_svm(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    return _loss_check(L.svm_loss, rng)


def _batchnorm_rows(rng: np.random.RandomState, backward: Callable,
                    L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    N, D = 4, 5
    x = 5 * rng.randn(N, D) + 12
    gamma, beta = rng.randn(D), rng.randn(D)
    dout = rng.randn(N, D)

    def forward(x: Array, gamma: Array, beta: Array) -> Array:
        return L.batchnorm_forward(x, gamma, beta, {"mode": "train"})[0]

    _, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = backward(dout, cache)
    return _numeric(forward, {"x": x, "gamma": gamma, "beta": beta}, dout,
                    {"x": dx, "gamma": dgamma, "beta": dbeta})


@register("batchnorm")
def check_batchnorm(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    return _batchnorm_rows(rng, L.batchnorm_backward, L)


@register("batchnorm_alt")
def check_batchnorm_alt(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    rows = _batchnorm_rows(rng, L.batchnorm_backward_alt, L)
    x, gamma, beta = rng.randn(100, 500), rng.randn(500), rng.randn(500)
    dout = rng.randn(100, 500)
    _, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    graph = L.batchnorm_backward(dout, cache)
    alt = L.batchnorm_backward_alt(dout, cache)
    for name, a, b in zip(("dx", "dgamma", "dbeta"), graph, alt):
        rows.append(compare_gradients(f"{name} alt vs graph", b, a, ANALYTIC_TOLERANCE))
    return rows


@register("layernorm")
def check_layernorm(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    N, D = 4, 5
    x = 5 * rng.randn(N, D) + 12
    gamma, beta = rng.randn(D), rng.randn(D)
    dout = rng.randn(N, D)

    def forward(x: Array, gamma: Array, beta: Array) -> Array:
        return L.layernorm_forward(x, gamma, beta, {})[0]

    _, cache = L.layernorm_forward(x, gamma, beta, {})
    dx, dgamma, dbeta = L.layernorm_backward(dout, cache)
    return _numeric(forward, {"x": x, "gamma": gamma, "beta": beta}, dout,
                    {"x": dx, "gamma": dgamma, "beta": dbeta})


@register("dropout")
def check_dropout(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    x = rng.randn(10, 10) + 10
    dout = rng.randn(*x.shape)
    param = {"mode": "train", "p": 0.2, "seed": 123}
    _, cache = L.dropout_forward(x, param)
    dx = L.dropout_backward(dout, cache)
    return _numeric(lambda x: L.dropout_forward(x, param)[0], {"x": x}, dout, {"x": dx}, "rel",
                    ELEMENTWISE_TOLERANCE)


def _conv_inputs(rng: np.random.RandomState) -> tuple[Array, Array, Array, dict]:
    x, w, b = rng.randn(4, 3, 5, 5), rng.randn(2, 3, 3, 3), rng.randn(2)
    return x, w, b, {"stride": 1, "pad": 1}


def _conv_rows(rng: np.random.RandomState, forward: Callable,
               backward: Callable) -> list[CheckRow]:
    x, w, b, conv_param = _conv_inputs(rng)
    out, cache = forward(x, w, b, conv_param)
    dout = rng.randn(*out.shape)
    dx, dw, db = backward(dout, cache)
    return _numeric(lambda x, w, b: forward(x, w, b, conv_param)[0], {"x": x, "w": w, "b": b},
                    dout, {"x": dx, "w": dw, "b": db})


@register("conv")
def check_conv(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    return _conv_rows(rng, L.conv_forward_naive, L.conv_backward_naive)


@register("conv_fast")
def check_conv_fast(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    rows = _conv_rows(rng, L.conv_forward_fast, L.conv_backward_fast)
    # Fast vs naive on the course's comparison shape (stride 2, pad 1).
    x, w, b = rng.randn(10, 3, 31, 31), rng.randn(25, 3, 3, 3), rng.randn(25)
    conv_param = {"stride": 2, "pad": 1}
    out_naive, cache_naive = L.conv_forward_naive(x, w, b, conv_param)
    out_fast, cache_fast = L.conv_forward_fast(x, w, b, conv_param)
    dout = rng.randn(*out_naive.shape)
    naive = L.conv_backward_naive(dout, cache_naive)
    fast = L.conv_backward_fast(dout, cache_fast)
    rows.append(compare_gradients("out fast vs naive", out_fast, out_naive, ANALYTIC_TOLERANCE))
    for name, a, f in zip(("dx", "dw", "db"), naive, fast):
        rows.append(compare_gradients(f"{name} fast vs naive", f, a, ANALYTIC_TOLERANCE))
    return rows


def _pool_rows(rng: np.random.RandomState, forward: Callable,
               backward: Callable) -> list[CheckRow]:
    x = _away_from_kinks(rng, 3, 2, 8, 8)  # no two entries of a window within a step
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = forward(x, pool_param)
    dout = rng.randn(*out.shape)
    dx = backward(dout, cache)
    return _numeric(lambda x: forward(x, pool_param)[0], {"x": x}, dout, {"x": dx}, "rel",
                    ELEMENTWISE_TOLERANCE)


@register("maxpool")
def check_maxpool(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    return _pool_rows(rng, L.max_pool_forward_naive, L.max_pool_backward_naive)


@register("maxpool_fast")
def check_maxpool_fast(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    rows = _pool_rows(rng, L.max_pool_forward_fast, L.max_pool_backward_fast)
    x = rng.randn(20, 3, 17, 15)  # overlapping 3x3 windows with stride 2, not tiling
    pool_param = {"pool_height": 3, "pool_width": 3, "stride": 2}
    out_naive, cache_naive = L.max_pool_forward_naive(x, pool_param)
    out_fast, cache_fast = L.max_pool_forward_fast(x, pool_param)
    dout = rng.randn(*out_naive.shape)
    dx_naive = L.max_pool_backward_naive(dout, cache_naive)
    dx_fast = L.max_pool_backward_fast(dout, cache_fast)
    rows.append(compare_gradients("out fast vs naive", out_fast, out_naive, ANALYTIC_TOLERANCE))
    rows.append(compare_gradients("dx fast vs naive", dx_fast, dx_naive, ANALYTIC_TOLERANCE))
    return rows


@register("spatial_batchnorm")
def check_spatial_batchnorm(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    N, C, H, W = 2, 3, 4, 5
    x = 5 * rng.randn(N, C, H, W) + 12
    gamma, beta = rng.randn(C), rng.randn(C)
    dout = rng.randn(N, C, H, W)

    def forward(x: Array, gamma: Array, beta: Array) -> Array:
        return L.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})[0]

    _, cache = L.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = L.spatial_batchnorm_backward(dout, cache)
    return _numeric(forward, {"x": x, "gamma": gamma, "beta": beta}, dout,
                    {"x": dx, "gamma": dgamma, "beta": dbeta})


@register("spatial_groupnorm")
def check_spatial_groupnorm(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    N, C, H, W, G = 2, 6, 4, 5, 2
    x = 5 * rng.randn(N, C, H, W) + 12
    gamma, beta = rng.randn(1, C, 1, 1), rng.randn(1, C, 1, 1)
    dout = rng.randn(N, C, H, W)

    def forward(x: Array, gamma: Array, beta: Array) -> Array:
        return L.spatial_groupnorm_forward(x, gamma, beta, G, {})[0]

    _, cache = L.spatial_groupnorm_forward(x, gamma, beta, G, {})
    dx, dgamma, dbeta = L.spatial_groupnorm_backward(dout, cache)
    return _numeric(forward, {"x": x, "gamma": gamma, "beta": beta}, dout,
                    {"x": dx, "gamma": dgamma, "beta": dbeta})


@register("affine_relu")
def check_affine_relu(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    x, w, b = rng.randn(2, 3, 4), rng.randn(12, 10), rng.randn(10)
    out, cache = L.affine_relu_forward(x, w, b)
    dout = rng.randn(*out.shape)
    dx, dw, db = L.affine_relu_backward(dout, cache)
    return _numeric(lambda x, w, b: L.affine_relu_forward(x, w, b)[0], {"x": x, "w": w, "b": b},
                    dout, {"x": dx, "w": dw, "b": db}, kinks=True)


@register("affine_norm_relu")
def check_affine_norm_relu(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    rows = []
    x, w, b = rng.randn(4, 3, 2), rng.randn(6, 7), rng.randn(7)
    gamma, beta = _scale_and_shift(rng, 7)
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
        for row in _numeric(forward, inputs, dout, analytic, zero=zero, kinks=True):
            rows.append(replace(row, what=f"{row.what} ({normalization}+dropout)"))
    return rows


@register("conv_relu")
def check_conv_relu(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    x, w, b, conv_param = _conv_inputs(rng)
    out, cache = L.conv_relu_forward(x, w, b, conv_param)
    dout = rng.randn(*out.shape)
    dx, dw, db = L.conv_relu_backward(dout, cache)
    return _numeric(lambda x, w, b: L.conv_relu_forward(x, w, b, conv_param)[0],
                    {"x": x, "w": w, "b": b}, dout, {"x": dx, "w": dw, "b": db}, kinks=True)


@register("conv_relu_pool")
def check_conv_relu_pool(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    x, w, b = rng.randn(2, 3, 16, 16), rng.randn(3, 3, 3, 3), rng.randn(3)
    conv_param = {"stride": 1, "pad": 1}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = L.conv_relu_pool_forward(x, w, b, conv_param, pool_param)
    dout = rng.randn(*out.shape)
    dx, dw, db = L.conv_relu_pool_backward(dout, cache)
    return _numeric(lambda x, w, b: L.conv_relu_pool_forward(x, w, b, conv_param, pool_param)[0],
                    {"x": x, "w": w, "b": b}, dout, {"x": dx, "w": dw, "b": db}, kinks=True)


@register("conv_bn_relu")
def check_conv_bn_relu(rng: np.random.RandomState, L: Any = None) -> list[CheckRow]:
    L = cvlab_layers if L is None else L
    x, w, b, conv_param = _conv_inputs(rng)
    gamma, beta = _scale_and_shift(rng, 2)

    def forward(x: Array, w: Array, b: Array, gamma: Array, beta: Array) -> Array:
        return L.conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, {"mode": "train"})[0]

    out, cache = L.conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, {"mode": "train"})
    dout = rng.randn(*out.shape)
    dx, dw, db, dgamma, dbeta = L.conv_bn_relu_backward(dout, cache)
    return _numeric(forward, {"x": x, "w": w, "b": b, "gamma": gamma, "beta": beta}, dout,
                    {"x": dx, "w": dw, "b": db, "gamma": dgamma, "beta": dbeta}, zero=("b",),
                    kinks=True)
