"""Measures of the layers, computed in process on the notebooks' own inputs.

Every input is built as the notebooks build it: `np.random.seed(231)` (the temporal softmax
gradient check: 231231) and then np.random.randn / randint / rand in the notebook's order and
shapes, or np.linspace grids; so cvlab's layers see exactly the arrays the course's printed
numbers came from. Gradient checks compare cvlab's backward (autograd for the recurrent layers)
with centered differences at h = 1e-5 by the course's relative error, max |a - n| /
max(1e-8, |a| + |n|), one value per printed line ({"dx": ..., "dw": ...}).

Shapes follow the notebooks: N samples, D features, C channels, H x W images, T time steps,
V vocabulary size, G groups.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cvlab.reproduce.measures import MeasureContext, Measured, course_api, measure

SEED = 231  # every notebook cell seeds numpy with it before drawing its inputs
DROPOUT_KEEPS = (0.25, 0.4, 0.7)  # the keep probabilities of the dropout forward cell, in order
WARMUP_BATCHES = 50  # train-mode forward passes before the test-mode checks


def _randn(*shape: int) -> np.ndarray:
    return np.random.randn(*shape)


def _as_param(value: float | Sequence[float], shape: tuple[int, ...]) -> np.ndarray:
    """A scale/shift given as one number or one per feature, shaped `shape`."""
    return np.broadcast_to(np.asarray(value, dtype=float).reshape(-1), (int(np.prod(shape)),)
                           ).reshape(shape).copy()


# --- forward statistics of the normalizations -------------------------------------------------


def _relu_net(X: np.ndarray, W1: np.ndarray, W2: np.ndarray) -> np.ndarray:
    """The notebooks' two-layer input to a normalization: relu(X W1) W2, (N, D3)."""
    return np.maximum(0, X.dot(W1)).dot(W2)


def _batchnorm_output(mode: str, gamma: Any, beta: Any) -> np.ndarray:
    """Batchnorm of relu(X W1) W2 (N, D1, D2, D3 = 200, 50, 60, 3): train mode on one batch,
    or test mode after 50 train-mode batches warmed the running statistics. (N, 3)."""
    L = course_api()
    np.random.seed(SEED)
    N, D1, D2, D3 = 200, 50, 60, 3
    gamma, beta = _as_param(gamma, (D3,)), _as_param(beta, (D3,))
    if mode == "train":
        X = _randn(N, D1)
        W1, W2 = _randn(D1, D2), _randn(D2, D3)
        return L.batchnorm_forward(_relu_net(X, W1, W2), gamma, beta, {"mode": "train"})[0]
    W1, W2 = _randn(D1, D2), _randn(D2, D3)
    bn_param = {"mode": "train"}
    for _ in range(WARMUP_BATCHES):
        L.batchnorm_forward(_relu_net(_randn(N, D1), W1, W2), np.ones(D3), np.zeros(D3),
                            bn_param)
    bn_param["mode"] = "test"
    return L.batchnorm_forward(_relu_net(_randn(N, D1), W1, W2), gamma, beta, bn_param)[0]


def _layernorm_output(mode: str, gamma: Any, beta: Any) -> np.ndarray:
    """Layernorm of relu(X W1) W2 for N, D1, D2, D3 = 4, 50, 60, 3 (train = test). (4, 3)."""
    L = course_api()
    np.random.seed(SEED)
    X = _randn(4, 50)
    W1, W2 = _randn(50, 60), _randn(60, 3)
    return L.layernorm_forward(_relu_net(X, W1, W2), _as_param(gamma, (3,)),
                               _as_param(beta, (3,)), {"mode": mode})[0]


def _spatial_batchnorm_output(mode: str, gamma: Any, beta: Any) -> np.ndarray:
    """Spatial batchnorm of 4 randn + 10 (N, C, H, W = 2, 3, 4, 5) in train mode, or of
    2.3 randn + 13 (10, 4, 11, 12) in test mode after 50 train-mode batches."""
    L = course_api()
    np.random.seed(SEED)
    if mode == "train":
        x = 4 * _randn(2, 3, 4, 5) + 10
        return L.spatial_batchnorm_forward(x, _as_param(gamma, (3,)), _as_param(beta, (3,)),
                                           {"mode": "train"})[0]
    N, C, H, W = 10, 4, 11, 12
    bn_param = {"mode": "train"}
    for _ in range(WARMUP_BATCHES):
        L.spatial_batchnorm_forward(2.3 * _randn(N, C, H, W) + 13, np.ones(C), np.zeros(C),
                                    bn_param)
    bn_param["mode"] = "test"
    x = 2.3 * _randn(N, C, H, W) + 13
    return L.spatial_batchnorm_forward(x, _as_param(gamma, (C,)), _as_param(beta, (C,)),
                                       bn_param)[0]


def _groupnorm_output(mode: str, gamma: Any, beta: Any) -> np.ndarray:
    """Group norm (G = 2) of 4 randn + 10, N, C, H, W = 2, 6, 4, 5, as (N * G, C / G * H * W)."""
    L = course_api()
    np.random.seed(SEED)
    N, C, H, W, G = 2, 6, 4, 5, 2
    x = 4 * _randn(N, C, H, W) + 10
    out = L.spatial_groupnorm_forward(x, _as_param(gamma, (1, C, 1, 1)),
                                      _as_param(beta, (1, C, 1, 1)), G, {"mode": mode})[0]
    return out.reshape(N * G, -1)


# layer -> (output builder, the axes the notebook takes statistics over)
NORM_OUTPUTS: dict[str, tuple[Callable[[str, Any, Any], np.ndarray], tuple[int, ...]]] = {
    "batchnorm": (_batchnorm_output, (0,)),
    "layernorm": (_layernorm_output, (1,)),
    "spatial_batchnorm": (_spatial_batchnorm_output, (0, 2, 3)),
    "spatial_groupnorm": (_groupnorm_output, (1,)),
}


@measure("norm_forward_stats")
def norm_forward_stats(context: MeasureContext, layer: str, stat: str, mode: str = "train",
                       gamma: float | list = 1.0, beta: float | list = 0.0) -> Measured:
    """The means or stds (`stat`) the notebook prints after a normalization's forward pass:
    per feature (batchnorm), per sample (layernorm), per channel (spatial batchnorm) or per
    (sample, group) (group norm). A list of floats."""
    if layer not in NORM_OUTPUTS:
        raise ValueError(f"unknown layer {layer!r}; valid: {', '.join(NORM_OUTPUTS)}")
    build, axes = NORM_OUTPUTS[layer]
    out = build(mode, gamma, beta)
    values = out.mean(axis=axes) if stat == "mean" else out.std(axis=axes)
    return Measured([float(v) for v in values],
                    detail=f"{layer} {mode} mode, gamma {gamma}, beta {beta}: {stat} per group")


@measure("dropout_forward_stats")
def dropout_forward_stats(context: MeasureContext, keep: float, stat: str) -> Measured:
    """What the dropout forward cell prints for keep probability `keep` (x = randn(500, 500)
    + 10, then train and test passes for keep 0.25, 0.4, 0.7 in turn, the masks drawn from
    numpy's global RNG): stat input_mean, train_mean, test_mean, train_zero_fraction or
    test_zero_fraction. A float."""
    L = course_api()
    if keep not in DROPOUT_KEEPS:
        raise ValueError(f"keep {keep} is not one of the notebook's {DROPOUT_KEEPS}")
    np.random.seed(SEED)
    x = _randn(500, 500) + 10
    for p in DROPOUT_KEEPS:
        train = L.dropout_forward(x, {"mode": "train", "p": p})[0]
        test = L.dropout_forward(x, {"mode": "test", "p": p})[0]
        if p == keep:
            break
    values = {"input_mean": x.mean(), "train_mean": train.mean(), "test_mean": test.mean(),
              "train_zero_fraction": (train == 0).mean(),
              "test_zero_fraction": (test == 0).mean()}
    return Measured(float(values[stat]), detail=f"keep {keep}: {stat}")


# --- outputs against the notebooks' printed arrays --------------------------------------------


def _grid(low: float, high: float, *shape: int) -> np.ndarray:
    """np.linspace(low, high, prod(shape)) reshaped: the notebooks' deterministic inputs."""
    return np.linspace(low, high, num=int(np.prod(shape))).reshape(shape)


def _conv_naive_output() -> np.ndarray:
    L = course_api()
    x, w, b = _grid(-0.1, 0.5, 2, 3, 4, 4), _grid(-0.2, 0.3, 3, 3, 4, 4), _grid(-0.1, 0.2, 3)
    return L.conv_forward_naive(x, w, b, {"stride": 2, "pad": 1})[0]


def _maxpool_naive_output() -> np.ndarray:
    L = course_api()
    pool_param = {"pool_width": 2, "pool_height": 2, "stride": 2}
    return L.max_pool_forward_naive(_grid(-0.3, 0.4, 2, 3, 4, 4), pool_param)[0]


def _rnn_step_output() -> np.ndarray:
    import torch

    L = course_api()
    N, D, H = 3, 10, 4
    t = torch.from_numpy
    return L.rnn_step_forward(t(_grid(-0.4, 0.7, N, D)), t(_grid(-0.2, 0.5, N, H)),
                              t(_grid(-0.1, 0.9, D, H)), t(_grid(-0.3, 0.7, H, H)),
                              t(_grid(-0.2, 0.4, H))).numpy()


def _rnn_output() -> np.ndarray:
    import torch

    L = course_api()
    N, T, D, H = 2, 3, 4, 5
    t = torch.from_numpy
    return L.rnn_forward(t(_grid(-0.1, 0.3, N, T, D)), t(_grid(-0.3, 0.1, N, H)),
                         t(_grid(-0.2, 0.4, D, H)), t(_grid(-0.4, 0.1, H, H)),
                         t(_grid(-0.7, 0.1, H))).numpy()


def _word_embedding_output() -> np.ndarray:
    import torch

    L = course_api()
    words = torch.from_numpy(np.asarray([[0, 3, 1, 2], [2, 1, 0, 3]]))
    return L.word_embedding_forward(words, torch.from_numpy(_grid(0, 1, 5, 3))).numpy()


FORWARD_OUTPUTS: dict[str, Callable[[], np.ndarray]] = {
    "conv_naive": _conv_naive_output, "maxpool_naive": _maxpool_naive_output,
    "rnn_step": _rnn_step_output, "rnn": _rnn_output, "word_embedding": _word_embedding_output,
}


@measure("forward_output")
def forward_output(context: MeasureContext, layer: str) -> Measured:
    """A layer's forward output on the notebook's linspace inputs, flattened in C order (the
    notebook compares it with its printed `correct_out` / `expected_*` array)."""
    if layer not in FORWARD_OUTPUTS:
        raise ValueError(f"unknown layer {layer!r}; valid: {', '.join(FORWARD_OUTPUTS)}")
    out = FORWARD_OUTPUTS[layer]()
    return Measured([float(v) for v in np.ravel(out)], detail=f"{layer}: output {out.shape}")


# --- the temporal softmax loss's sanity check -------------------------------------------------

SOFTMAX_CHECKS = ((100, 1, 10, 1.0), (100, 10, 10, 1.0), (5000, 10, 10, 0.1))  # N, T, V, p


@measure("temporal_softmax_loss_check")
def temporal_softmax_loss_check(context: MeasureContext, call: int) -> Measured:
    """The loss the notebook's `check_loss(N, T, V, p)` prints on its `call`-th call (0, 1, 2):
    scores 0.001 randn (N, T, V), targets randint, mask rand <= p.

    That cell sets no seed: numpy's RNG is where the cell before it (the temporal affine
    gradient check) left it when the notebook runs top to bottom, i.e. seed 231 followed by
    randn (2, 3, 4), (4, 5), (5,) and (2, 3, 5); it is put there first."""
    import torch

    L = course_api()
    np.random.seed(SEED)
    for shape in ((2, 3, 4), (4, 5), (5,), (2, 3, 5)):
        _randn(*shape)
    for N, T, V, p in SOFTMAX_CHECKS[:call + 1]:
        x = 0.001 * torch.from_numpy(_randn(N, T, V))
        y = torch.from_numpy(np.random.randint(V, size=(N, T)))
        mask = torch.from_numpy(np.random.rand(N, T)) <= p
    loss = float(L.temporal_softmax_loss(x, y, mask))
    return Measured(loss, detail=f"check_loss{SOFTMAX_CHECKS[call]}")
