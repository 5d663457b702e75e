"""Recurrent layers: against direct numpy computations, the course's values, numeric gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cvlab.checks import get_check
from cvlab.layers.rnn import (
    lstm_forward,
    lstm_step_forward,
    rnn_forward,
    rnn_step_forward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_forward,
)

pytestmark = pytest.mark.numerics


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


def np_lstm_step(x, h, c, Wx, Wh, b):
    a = x @ Wx + h @ Wh + b
    H = h.shape[1]
    i, f, o, g = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H]), \
        np.tanh(a[:, 3 * H:])
    c = f * c + i * g
    return o * np.tanh(c), c


def test_rnn_step_matches_course_values():
    N, D, H = 3, 10, 4
    x = np.linspace(-0.4, 0.7, num=N * D).reshape(N, D)
    prev_h = np.linspace(-0.2, 0.5, num=N * H).reshape(N, H)
    Wx = np.linspace(-0.1, 0.9, num=D * H).reshape(D, H)
    Wh = np.linspace(-0.3, 0.7, num=H * H).reshape(H, H)
    b = np.linspace(-0.2, 0.4, num=H)
    expected = np.array([[-0.58172089, -0.50182032, -0.41232771, -0.31410098],
                         [0.66854692, 0.79562378, 0.87755553, 0.92795967],
                         [0.97934501, 0.99144213, 0.99646691, 0.99854353]])
    out = rnn_step_forward(t(x), t(prev_h), t(Wx), t(Wh), t(b)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-7)
    np.testing.assert_allclose(out, np.tanh(x @ Wx + prev_h @ Wh + b), rtol=1e-12)


def test_lstm_step_matches_course_values():
    N, D, H = 3, 4, 5
    x = np.linspace(-0.4, 1.2, num=N * D).reshape(N, D)
    prev_h = np.linspace(-0.3, 0.7, num=N * H).reshape(N, H)
    prev_c = np.linspace(-0.4, 0.9, num=N * H).reshape(N, H)
    Wx = np.linspace(-2.1, 1.3, num=4 * D * H).reshape(D, 4 * H)
    Wh = np.linspace(-0.7, 2.2, num=4 * H * H).reshape(H, 4 * H)
    b = np.linspace(0.3, 0.7, num=4 * H)
    next_h, next_c = lstm_step_forward(*map(t, (x, prev_h, prev_c, Wx, Wh, b)))
    expected_h = np.array([[0.24635157, 0.28610883, 0.32240467, 0.35525807, 0.38474904],
                           [0.49223563, 0.55611431, 0.61507696, 0.66844003, 0.7159181],
                           [0.56735664, 0.66310127, 0.74419266, 0.80889665, 0.85834271]])
    np.testing.assert_allclose(next_h.numpy(), expected_h, rtol=1e-4)  # course notebook values
    ref_h, ref_c = np_lstm_step(x, prev_h, prev_c, Wx, Wh, b)
    np.testing.assert_allclose(next_h.numpy(), ref_h, rtol=1e-12)
    np.testing.assert_allclose(next_c.numpy(), ref_c, rtol=1e-12)


def test_rnn_and_lstm_forward_match_step_loops():
    rng = np.random.RandomState(0)
    N, T, D, H = 2, 5, 3, 4
    x, h0 = rng.randn(N, T, D), rng.randn(N, H)
    Wx, Wh, b = rng.randn(D, H), rng.randn(H, H), rng.randn(H)
    h, expected = h0, []
    for step in range(T):
        h = np.tanh(x[:, step] @ Wx + h @ Wh + b)
        expected.append(h)
    out = rnn_forward(t(x), t(h0), t(Wx), t(Wh), t(b)).numpy()
    assert out.shape == (N, T, H)
    np.testing.assert_allclose(out, np.stack(expected, 1), rtol=1e-12)

    Wx4, Wh4, b4 = rng.randn(D, 4 * H), rng.randn(H, 4 * H), rng.randn(4 * H)
    h, c, expected = h0, np.zeros_like(h0), []  # c0 = 0
    for step in range(T):
        h, c = np_lstm_step(x[:, step], h, c, Wx4, Wh4, b4)
        expected.append(h)
    out = lstm_forward(t(x), t(h0), t(Wx4), t(Wh4), t(b4)).numpy()
    np.testing.assert_allclose(out, np.stack(expected, 1), rtol=1e-12)


def test_word_embedding_and_temporal_affine():
    rng = np.random.RandomState(1)
    W = rng.randn(5, 3)
    ids = np.array([[0, 3, 1], [2, 2, 4]])
    np.testing.assert_array_equal(word_embedding_forward(torch.from_numpy(ids), t(W)).numpy(),
                                  W[ids])
    x, w, b = rng.randn(2, 4, 3), rng.randn(3, 6), rng.randn(6)
    out = temporal_affine_forward(t(x), t(w), t(b)).numpy()
    np.testing.assert_allclose(out, np.einsum("ntd,dm->ntm", x, w) + b, rtol=1e-12)


@pytest.mark.parametrize("N,T,V,p,low,high", [(100, 1, 10, 1.0, 2.25, 2.35),
                                              (100, 10, 10, 1.0, 22.5, 23.5),
                                              (5000, 10, 10, 0.1, 2.2, 2.4)])
def test_temporal_softmax_sanity(N, T, V, p, low, high):
    rng = np.random.RandomState(231)
    x = 0.001 * rng.randn(N, T, V)
    y = rng.randint(V, size=(N, T))
    mask = rng.rand(N, T) <= p
    loss = float(temporal_softmax_loss(t(x), torch.from_numpy(y), torch.from_numpy(mask)))
    assert low < loss < high


def test_temporal_softmax_matches_direct_and_masks_gradients():
    rng = np.random.RandomState(2)
    N, T, V = 4, 3, 5
    x = rng.randn(N, T, V)
    x[0, 0, 0] = 1e4  # a huge logit at a masked position must not leak nan/inf
    y = rng.randint(V, size=(N, T))
    mask = rng.rand(N, T) > 0.4
    mask[0, 0] = False
    xt = t(x).requires_grad_()
    loss = temporal_softmax_loss(xt, torch.from_numpy(y), torch.from_numpy(mask))
    shifted = x - x.max(axis=2, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
    direct = -(log_p[np.arange(N)[:, None], np.arange(T)[None], y] * mask).sum() / N
    assert float(loss.detach()) == pytest.approx(direct, rel=1e-12)
    loss.backward()
    grad = xt.grad.numpy()
    assert np.isfinite(grad).all()
    assert np.all(grad[~mask] == 0)
    assert np.abs(grad[mask]).sum() > 0


@pytest.mark.parametrize("name", ["rnn_step", "rnn", "lstm_step", "lstm", "word_embedding",
                                  "temporal_affine", "temporal_softmax", "captioning_rnn",
                                  "captioning_lstm"])
def test_gradcheck_registrations_pass_with_a_10x_margin(name):
    rows = get_check(name)(np.random.RandomState(231))
    assert rows
    for row in rows:
        assert row.passed, (name, row)
        assert row.error <= row.tolerance / 10, (name, row)


# ---------------------------------------------------------------------------- bad input

def z(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape, dtype=torch.float64)


BAD_RECURRENT = [
    # (function, args, words the message must hold)
    (rnn_step_forward, (z(2, 3), z(2, 4), z(3, 5), z(4, 4), z(4)), "Wx (3, 5)"),
    (rnn_step_forward, (z(2, 3), z(3, 4), z(3, 4), z(4, 4), z(4)), "h (3, 4)"),
    (rnn_forward, (z(2, 3), z(2, 4), z(3, 4), z(4, 4), z(4)), "x (N, T, D)"),
    (rnn_forward, (z(2, 5, 3), z(2, 4), z(3, 4), z(4, 4), z(5)), "b (5,)"),
    (rnn_forward, (z(2, 0, 3), z(2, 4), z(3, 4), z(4, 4), z(4)), "T = 0"),
    (lstm_step_forward, (z(2, 3), z(2, 4), z(2, 5), z(3, 16), z(4, 16), z(16)), "c (2, 5)"),
    (lstm_step_forward, (z(2, 3), z(2, 4), z(2, 4), z(3, 4), z(4, 4), z(4)), "Wx (D, 4H)"),
    (lstm_forward, (z(2, 5, 3), z(2, 4), z(3, 16), z(4, 12), z(16)), "Wh (4, 12)"),
    (lstm_forward, (z(2, 0, 3), z(2, 4), z(3, 16), z(4, 16), z(16)), "T = 0"),
    (temporal_affine_forward, (z(2, 5, 3), z(4, 6), z(6)), "w (4, 6)"),
    (temporal_affine_forward, (z(2, 5, 3), z(3, 6), z(5)), "b (5,)"),
]


@pytest.mark.parametrize("fn, args, words", BAD_RECURRENT)
def test_mismatched_recurrent_shapes_raise_value_error_naming_them(fn, args, words):
    with pytest.raises(ValueError) as err:
        fn(*args)
    message = str(err.value)
    assert fn.__name__ in message and words in message
    assert str(tuple(args[0].shape)) in message


@pytest.mark.parametrize("bad_id", [-1, 7])
def test_word_ids_outside_the_vocabulary_are_refused(bad_id):
    W = z(7, 3)  # V = 7
    ids = torch.tensor([[1, 2, bad_id], [0, 6, 3]])
    with pytest.raises(ValueError, match=rf"\[0, 7\).*W \(7, 3\).*from {min(bad_id, 0)} to "
                                         rf"{max(bad_id, 6)}"):
        word_embedding_forward(ids, W)  # -1 would silently take the last word's vector
    with pytest.raises(ValueError, match="integers"):
        word_embedding_forward(ids.double(), W)
    scores, mask = z(2, 3, 7), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"targets y \(2, 3\) must lie in \[0, 7\)"):
        temporal_softmax_loss(scores, ids, mask)
    assert word_embedding_forward(ids.clamp(0, 6), W).shape == (2, 3, 3)


def test_temporal_softmax_loss_refuses_empty_batches_and_mismatched_shapes():
    with pytest.raises(ValueError, match=r"empty batch \(scores x \(0, 3, 7\)\)"):
        temporal_softmax_loss(z(0, 3, 7), torch.zeros(0, 3, dtype=torch.long),
                              torch.ones(0, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"x \(2, 3, 7\), y \(2, 4\), mask \(2, 3\)"):
        temporal_softmax_loss(z(2, 3, 7), torch.zeros(2, 4, dtype=torch.long),
                              torch.ones(2, 3, dtype=torch.bool))
