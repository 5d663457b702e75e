"""Gradient checks of the recurrent (torch) layers and CaptioningRNN for `cvlab gradcheck`.

Autograd gradients of sum(forward(inputs) * dout) are compared with centered differences
(cvlab.gradcheck, h = 1e-5) in float64, on the course's small shapes. These functions are
smooth (tanh, sigmoid, softmax), so the numeric error is the model's rounding plus truncation,
~1e-10 per entry; entries close to zero (the sums over time cancel) make the course's
max-over-entries relative error swing from seed to seed and CPU to CPU (up to ~1e-6 in the
LSTM's dWh), so each row is judged on the tensor's norm error, bound NUMERIC_TOLERANCE (1e-7).
The captioning models are conditioned: the course's word vectors are ~1e-2 (W_embed / 100),
which makes dWx ~100x smaller than the rounding of a loss of ~2; the check draws them of
order 1. A wrong backward (see the mutation tests) gives norm errors above 1e-3.

The layer checks take the functions they check as `R` (default cvlab.layers.rnn, looked up at
call time) and the captioner checks its class as `net`: `cvlab gradcheck impl=<folder>` passes
stand-ins of a student's (cvlab.impl.remote), differentiable through their worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from cvlab.checks import NUMERIC_TOLERANCE, CheckRow, compare_gradients, register
from cvlab.gradcheck import eval_numerical_gradient_array
from cvlab.layers import rnn as cvlab_rnn

Array = np.ndarray


def _as_outputs(result: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return result if isinstance(result, tuple) else (result,)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: thousands of tiny ops are much faster without thread handoffs
    (and on a shared machine, many times faster)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def compare(forward: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
            inputs: dict[str, Array], rng: np.random.RandomState,
            wrt: tuple[str, ...] | None = None, fixed: dict[str, object] | None = None,
            tolerance: float = NUMERIC_TOLERANCE) -> list[CheckRow]:
    """Rows d<name> for each input in `wrt` (default: all of `inputs`): autograd vs numeric.

    forward takes torch tensors (float64) by keyword, plus the `fixed` arguments unchanged
    (integer ids, masks), and returns one tensor or a tuple of tensors; each output is
    weighted by its own random upstream gradient.
    """
    with single_thread():
        return _compare(forward, inputs, rng, wrt, fixed or {}, tolerance)


def _compare(forward: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
             inputs: dict[str, Array], rng: np.random.RandomState, wrt: tuple[str, ...] | None,
             fixed: dict[str, object], tolerance: float) -> list[CheckRow]:
    wrt = tuple(inputs) if wrt is None else wrt
    leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k in wrt)
              for k, v in inputs.items()}
    outputs = _as_outputs(forward(**leaves, **fixed))
    douts = [np.array(rng.randn(*o.shape)) for o in outputs]
    total = sum((o * torch.from_numpy(d)).sum() for o, d in zip(outputs, douts))
    total.backward()

    def weighted(**arrays: Array) -> Array:
        tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}
        with torch.no_grad():
            outs = _as_outputs(forward(**tensors, **fixed))
        return np.array(sum(float((o.numpy() * d).sum()) for o, d in zip(outs, douts)))

    rows = []
    for name in wrt:
        values = {k: np.array(v, dtype=np.float64) for k, v in inputs.items()}

        def f(value: Array, name: str = name, values: dict[str, Array] = values) -> Array:
            return weighted(**{**values, name: value})

        numeric = eval_numerical_gradient_array(f, values[name], np.array(1.0))
        grad = leaves[name].grad  # None: no gradient flows to this input at all
        analytic = np.zeros_like(values[name]) if grad is None else grad.numpy()
        rows.append(compare_gradients(f"d{name}", analytic, numeric, tolerance))
    return rows


@register("rnn_step")
def check_rnn_step(rng: np.random.RandomState, R: Any = None) -> list[CheckRow]:
    R = cvlab_rnn if R is None else R
    N, D, H = 4, 5, 6
    inputs = {"x": rng.randn(N, D), "prev_h": rng.randn(N, H), "Wx": rng.randn(D, H),
              "Wh": rng.randn(H, H), "b": rng.randn(H)}
    return compare(R.rnn_step_forward, inputs, rng)


@register("rnn")
def check_rnn(rng: np.random.RandomState, R: Any = None) -> list[CheckRow]:
    R = cvlab_rnn if R is None else R
    N, D, T, H = 2, 3, 10, 5
    # weights scaled by 1/sqrt(fan-in), so that ten steps do not saturate tanh
    inputs = {"x": rng.randn(N, T, D), "h0": rng.randn(N, H), "Wx": rng.randn(D, H) / D**0.5,
              "Wh": rng.randn(H, H) / H**0.5, "b": rng.randn(H)}
    return compare(R.rnn_forward, inputs, rng)


@register("lstm_step")
def check_lstm_step(rng: np.random.RandomState, R: Any = None) -> list[CheckRow]:
    R = cvlab_rnn if R is None else R
    N, D, H = 4, 5, 6
    inputs = {"x": rng.randn(N, D), "prev_h": rng.randn(N, H), "prev_c": rng.randn(N, H),
              "Wx": rng.randn(D, 4 * H), "Wh": rng.randn(H, 4 * H), "b": rng.randn(4 * H)}
    return compare(R.lstm_step_forward, inputs, rng)


@register("lstm")
def check_lstm(rng: np.random.RandomState, R: Any = None) -> list[CheckRow]:
    R = cvlab_rnn if R is None else R
    N, D, T, H = 2, 3, 10, 6
    inputs = {"x": rng.randn(N, T, D), "h0": rng.randn(N, H),
              "Wx": rng.randn(D, 4 * H) / D**0.5, "Wh": rng.randn(H, 4 * H) / H**0.5,
              "b": rng.randn(4 * H)}
    return compare(R.lstm_forward, inputs, rng)


@register("word_embedding")
def check_word_embedding(rng: np.random.RandomState, R: Any = None) -> list[CheckRow]:
    R = cvlab_rnn if R is None else R
    N, T, V, D = 2, 3, 5, 6
    ids = torch.from_numpy(rng.randint(V, size=(N, T)))
    return compare(lambda W, x: R.word_embedding_forward(x, W), {"W": rng.randn(V, D)}, rng,
                   fixed={"x": ids})


@register("temporal_affine")
def check_temporal_affine(rng: np.random.RandomState, R: Any = None) -> list[CheckRow]:
    R = cvlab_rnn if R is None else R
    N, T, D, M = 2, 3, 4, 5
    inputs = {"x": rng.randn(N, T, D), "w": rng.randn(D, M), "b": rng.randn(M)}
    return compare(R.temporal_affine_forward, inputs, rng)


@register("temporal_softmax")
def check_temporal_softmax(rng: np.random.RandomState, R: Any = None) -> list[CheckRow]:
    R = cvlab_rnn if R is None else R
    N, T, V = 20, 7, 8
    y = torch.from_numpy(rng.randint(V, size=(N, T)))
    mask = torch.from_numpy(rng.rand(N, T) > 0.5)
    return compare(R.temporal_softmax_loss, {"x": rng.randn(N, T, V)}, rng,
                   fixed={"y": y, "mask": mask})


def _check_captioning(rng: np.random.RandomState, cell_type: str,
                      net: Callable[..., Any] | None = None) -> list[CheckRow]:
    """`net`: the captioner's class checked (default cvlab's CaptioningRNN; `cvlab gradcheck
    impl=` passes a stand-in of a student's), called with the course's arguments and a torch
    `generator` for its initial weights."""
    from cvlab.models.nets.captioning import PARAM_NAMES, CaptioningRNN

    net = CaptioningRNN if net is None else net

    batch_size, timesteps, input_dim, wordvec_dim, hidden_dim = 2, 3, 4, 5, 6
    word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
    vocab_size = len(word_to_idx)
    captions = rng.randint(vocab_size, size=(batch_size, timesteps))
    features = rng.randn(batch_size, input_dim)
    model = net(word_to_idx, input_dim=input_dim, wordvec_dim=wordvec_dim,
                          hidden_dim=hidden_dim, cell_type=cell_type, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(int(rng.randint(2**31))))
    params = {name: model.params[name].detach().numpy().copy() for name in PARAM_NAMES}
    params["W_embed"] *= 100  # word vectors of order 1 (see the module's docstring)

    def loss(**values: torch.Tensor) -> torch.Tensor:
        model.params = dict(values)
        return model.loss(features, captions)

    return compare(loss, params, rng)


@register("captioning_rnn")
def check_captioning_rnn(rng: np.random.RandomState, net: Callable[..., Any] | None = None
                         ) -> list[CheckRow]:
    return _check_captioning(rng, "rnn", net)


@register("captioning_lstm")
def check_captioning_lstm(rng: np.random.RandomState, net: Callable[..., Any] | None = None
                          ) -> list[CheckRow]:
    return _check_captioning(rng, "lstm", net)
