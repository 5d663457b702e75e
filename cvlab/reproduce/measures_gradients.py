"""The notebooks' gradient checks of single layers, on the notebooks' own inputs.

Each check seeds numpy with 231 (temporal softmax: 231231), draws its inputs with
np.random.randn in the notebook's order and shapes, computes cvlab's gradients (the numpy
backward passes; autograd for the recurrent layers) and compares them with centered
differences at h = 1e-5 by the course's relative error max |a - n| / max(1e-8, |a| + |n|).
A few cells compare two analytic computations instead (batchnorm_backward vs _alt, fast vs
naive conv and pool): their "difference" is the same relative error between the two.
The result is one value per line the notebook prints, keyed as it prints them
({"dx": ..., "dgamma": ..., "dbeta": ...}).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cvlab.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from cvlab.reproduce.measures import MeasureContext, Measured, course_api, measure

SEED = 231
Errors = dict[str, float]
Arrays = dict[str, np.ndarray]


def _randn(*shape: int) -> np.ndarray:
    return np.random.randn(*shape)


def numeric_errors(forward: Callable[..., np.ndarray], inputs: Arrays, dout: np.ndarray,
                   analytic: Arrays) -> Errors:
    """{"d<name>": rel_error(numeric, analytic[name])} for each input named in `analytic`; the
    numeric gradient is that of sum(forward(**inputs) * dout) with respect to inputs[name]."""
    errors = {}
    for name, grad in analytic.items():
        def f(value: np.ndarray, name: str = name) -> np.ndarray:
            return forward(**{**inputs, name: value})

        numeric = eval_numerical_gradient_array(f, inputs[name].copy(), dout)
        errors[f"d{name}"] = float(rel_error(numeric, grad))
    return errors


# --- normalizations and dropout ---------------------------------------------------------------


def _norm_check(forward: Callable, backward: Callable, shape: tuple[int, ...],
                param_shape: tuple[int, ...], **extra: object) -> Errors:
    """The normalization cells: x = 5 randn + 12, gamma, beta, dout randn; dx, dgamma, dbeta."""
    np.random.seed(SEED)
    x = 5 * _randn(*shape) + 12
    gamma, beta = _randn(*param_shape), _randn(*param_shape)
    dout = _randn(*shape)
    param = {"mode": "train"}

    def run(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
        return forward(x, gamma, beta, *extra.values(), param)[0]

    cache = forward(x, gamma, beta, *extra.values(), param)[1]
    dx, dgamma, dbeta = backward(dout, cache)
    return numeric_errors(run, {"x": x, "gamma": gamma, "beta": beta}, dout,
                          {"x": dx, "gamma": dgamma, "beta": dbeta})


def _batchnorm() -> Errors:
    L = course_api()
    return _norm_check(L.batchnorm_forward, L.batchnorm_backward, (4, 5), (5,))


def _layernorm() -> Errors:
    L = course_api()
    return _norm_check(L.layernorm_forward, L.layernorm_backward, (4, 5), (5,))


def _spatial_batchnorm() -> Errors:
    L = course_api()
    return _norm_check(L.spatial_batchnorm_forward, L.spatial_batchnorm_backward, (2, 3, 4, 5),
                       (3,))


def _spatial_groupnorm() -> Errors:
    L = course_api()
    return _norm_check(L.spatial_groupnorm_forward, L.spatial_groupnorm_backward, (2, 6, 4, 5),
                       (1, 6, 1, 1), G=2)


def _batchnorm_alt() -> Errors:
    """batchnorm_backward vs batchnorm_backward_alt on N, D = 100, 500."""
    L = course_api()
    np.random.seed(SEED)
    x = 5 * _randn(100, 500) + 12
    gamma, beta, dout = _randn(500), _randn(500), _randn(100, 500)
    _, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    graph, alt = L.batchnorm_backward(dout, cache), L.batchnorm_backward_alt(dout, cache)
    return {name: float(rel_error(a, b)) for name, a, b in zip(("dx", "dgamma", "dbeta"),
                                                               graph, alt)}


def _dropout() -> Errors:
    """x = randn(10, 10) + 10, keep 0.2 with mask seed 123."""
    L = course_api()
    np.random.seed(SEED)
    x = _randn(10, 10) + 10
    dout = _randn(*x.shape)
    param = {"mode": "train", "p": 0.2, "seed": 123}
    _, cache = L.dropout_forward(x, param)
    dx = L.dropout_backward(dout, cache)
    return numeric_errors(lambda x: L.dropout_forward(x, param)[0], {"x": x}, dout, {"x": dx})


# --- convolution and pooling ------------------------------------------------------------------


def _conv_naive() -> Errors:
    """x (4, 3, 5, 5), w (2, 3, 3, 3), b (2,), stride 1, pad 1."""
    L = course_api()
    np.random.seed(SEED)
    x, w, b = _randn(4, 3, 5, 5), _randn(2, 3, 3, 3), _randn(2)
    dout = _randn(4, 2, 5, 5)
    conv_param = {"stride": 1, "pad": 1}
    _, cache = L.conv_forward_naive(x, w, b, conv_param)
    dx, dw, db = L.conv_backward_naive(dout, cache)
    return numeric_errors(lambda x, w, b: L.conv_forward_naive(x, w, b, conv_param)[0],
                          {"x": x, "w": w, "b": b}, dout, {"x": dx, "w": dw, "b": db})


POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _maxpool_naive() -> Errors:
    """x (3, 2, 8, 8), 2x2 pooling with stride 2."""
    L = course_api()
    np.random.seed(SEED)
    x, dout = _randn(3, 2, 8, 8), _randn(3, 2, 4, 4)
    _, cache = L.max_pool_forward_naive(x, POOL)
    dx = L.max_pool_backward_naive(dout, cache)
    return numeric_errors(lambda x: L.max_pool_forward_naive(x, POOL)[0], {"x": x}, dout,
                          {"x": dx})


def _conv_fast() -> Errors:
    """Fast vs naive conv: x (100, 3, 31, 31), w (25, 3, 3, 3), stride 2, pad 1."""
    L = course_api()
    np.random.seed(SEED)
    x, w, b = _randn(100, 3, 31, 31), _randn(25, 3, 3, 3), _randn(25)
    dout = _randn(100, 25, 16, 16)
    conv_param = {"stride": 2, "pad": 1}
    out_naive, cache_naive = L.conv_forward_naive(x, w, b, conv_param)
    out_fast, cache_fast = L.conv_forward_fast(x, w, b, conv_param)
    naive, fast = L.conv_backward_naive(dout, cache_naive), L.conv_backward_fast(dout, cache_fast)
    errors = {"out": float(rel_error(out_naive, out_fast))}
    errors.update({name: float(rel_error(a, b)) for name, a, b in zip(("dx", "dw", "db"),
                                                                      naive, fast)})
    return errors


def _maxpool_fast() -> Errors:
    """Fast vs naive max pool: x (100, 3, 32, 32)."""
    L = course_api()
    np.random.seed(SEED)
    x, dout = _randn(100, 3, 32, 32), _randn(100, 3, 16, 16)
    out_naive, cache_naive = L.max_pool_forward_naive(x, POOL)
    out_fast, cache_fast = L.max_pool_forward_fast(x, POOL)
    return {"out": float(rel_error(out_naive, out_fast)),
            "dx": float(rel_error(L.max_pool_backward_naive(dout, cache_naive),
                                  L.max_pool_backward_fast(dout, cache_fast)))}


def _conv_sandwich(forward: Callable, backward: Callable, image: int, pooled: bool) -> Errors:
    """conv_relu(_pool) on x (2, 3, image, image), w (3, 3, 3, 3), b (3,)."""
    np.random.seed(SEED)
    x, w, b = _randn(2, 3, image, image), _randn(3, 3, 3, 3), _randn(3)
    out_size = image // 2 if pooled else image
    dout = _randn(2, 3, out_size, out_size)
    params = ({"stride": 1, "pad": 1}, POOL) if pooled else ({"stride": 1, "pad": 1},)
    _, cache = forward(x, w, b, *params)
    dx, dw, db = backward(dout, cache)
    return numeric_errors(lambda x, w, b: forward(x, w, b, *params)[0],
                          {"x": x, "w": w, "b": b}, dout, {"x": dx, "w": dw, "b": db})


def _conv_relu_pool() -> Errors:
    L = course_api()
    return _conv_sandwich(L.conv_relu_pool_forward, L.conv_relu_pool_backward, 16, True)


def _conv_relu() -> Errors:
    L = course_api()
    return _conv_sandwich(L.conv_relu_forward, L.conv_relu_backward, 8, False)


# --- recurrent layers (torch, autograd) -------------------------------------------------------


def _torch_errors(forward: Callable, inputs: Arrays, names: Sequence[str],
                  integer: Sequence[str] = ()) -> Errors:
    """Autograd gradients of sum(forward(**inputs) * dout) against numeric ones, dout drawn
    with randn after the inputs (as the notebooks do). Inputs in `integer` get no gradient."""
    import torch

    tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
    for name in names:
        tensors[name].requires_grad_()
    out = forward(**tensors)
    dout = _randn(*out.shape)
    out.backward(torch.from_numpy(dout))
    analytic = {name: tensors[name].grad.numpy() for name in names}

    def numpy_forward(**arrays: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return forward(**{k: torch.from_numpy(v) for k, v in arrays.items()}).numpy()

    return numeric_errors(numpy_forward, inputs, dout, analytic)


def _rnn_step() -> Errors:
    L = course_api()
    np.random.seed(SEED)
    N, D, H = 4, 5, 6
    inputs = {"x": _randn(N, D), "h": _randn(N, H), "Wx": _randn(D, H), "Wh": _randn(H, H),
              "b": _randn(H)}
    return _torch_errors(lambda x, h, Wx, Wh, b: L.rnn_step_forward(x, h, Wx, Wh, b), inputs,
                         list(inputs))


def _rnn() -> Errors:
    L = course_api()
    np.random.seed(SEED)
    N, D, T, H = 2, 3, 10, 5
    inputs = {"x": _randn(N, T, D), "h0": _randn(N, H), "Wx": _randn(D, H), "Wh": _randn(H, H),
              "b": _randn(H)}
    return _torch_errors(lambda x, h0, Wx, Wh, b: L.rnn_forward(x, h0, Wx, Wh, b), inputs,
                         list(inputs))


def _word_embedding() -> Errors:
    L = course_api()
    np.random.seed(SEED)
    N, T, V, D = 50, 3, 5, 6
    inputs = {"x": np.random.randint(V, size=(N, T)), "W": _randn(V, D)}
    return _torch_errors(lambda x, W: L.word_embedding_forward(x, W), inputs, ["W"])


def _temporal_affine() -> Errors:
    L = course_api()
    np.random.seed(SEED)
    N, T, D, M = 2, 3, 4, 5
    inputs = {"x": _randn(N, T, D), "w": _randn(D, M), "b": _randn(M)}
    return _torch_errors(lambda x, w, b: L.temporal_affine_forward(x, w, b), inputs,
                         list(inputs))


def _temporal_softmax() -> Errors:
    """x randn (N, T, V = 7, 8, 9), y randint, mask rand > 0.5 at seed 231231; the numeric
    gradient of the scalar loss (eval_numerical_gradient)."""
    import torch

    L = course_api()
    np.random.seed(231231)
    N, T, V = 7, 8, 9
    x = _randn(N, T, V)
    y = torch.from_numpy(np.random.randint(V, size=(N, T)))
    mask = torch.from_numpy(np.random.rand(N, T) > 0.5)
    scores = torch.from_numpy(x).requires_grad_()
    L.temporal_softmax_loss(scores, y, mask).backward()
    numeric = eval_numerical_gradient(
        lambda x: float(L.temporal_softmax_loss(torch.from_numpy(x), y, mask)), x.copy(),
        verbose=False)
    return {"dx": float(rel_error(scores.grad.numpy(), numeric))}


GRADIENT_CHECKS: dict[str, Callable[[], Errors]] = {
    "batchnorm": _batchnorm, "batchnorm_alt": _batchnorm_alt, "layernorm": _layernorm,
    "dropout": _dropout, "conv_naive": _conv_naive, "maxpool_naive": _maxpool_naive,
    "conv_fast": _conv_fast, "maxpool_fast": _maxpool_fast, "conv_relu_pool": _conv_relu_pool,
    "conv_relu": _conv_relu, "spatial_batchnorm": _spatial_batchnorm,
    "spatial_groupnorm": _spatial_groupnorm, "rnn_step": _rnn_step, "rnn": _rnn,
    "word_embedding": _word_embedding, "temporal_affine": _temporal_affine,
    "temporal_softmax": _temporal_softmax,
}


@measure("layer_gradient_errors")
def layer_gradient_errors(context: MeasureContext, check: str) -> Measured:
    """The relative errors one gradient-check cell prints ({"dx": ..., ...})."""
    if check not in GRADIENT_CHECKS:
        raise ValueError(f"unknown gradient check {check!r}; valid: "
                         f"{', '.join(GRADIENT_CHECKS)}")
    errors = GRADIENT_CHECKS[check]()
    return Measured(errors, detail=f"{check}: " + ", ".join(f"{k} {v:.2e}"
                                                            for k, v in errors.items()))
