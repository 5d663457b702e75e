"""Recurrent layers for image captioning, on torch tensors (autograd does the backward).

These follow the course's PyTorch captioning API: each forward returns its output only
(no cache), because `loss.backward()` computes every gradient. Shapes use fixed letters:
N minibatch, T time steps, D input (word vector) size, H hidden size, V vocabulary size,
M output size.

LSTM gates are packed in the order i, f, o, g: the activations `a = x Wx + prev_h Wh + b`
of shape (N, 4H) split into input, forget and output gates (sigmoid) and the block input g
(tanh).

Mismatched shapes, sequences without time steps, word ids or targets outside [0, V) and an
empty batch in the loss raise ValueError naming the shapes (shape checks only, plus one
min/max over the ids).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cvlab.layers._validate import check_indices, check_nonempty, check_recurrent, shape_of


def rnn_step_forward(
    x: torch.Tensor, prev_h: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """One vanilla RNN step: next_h = tanh(x Wx + prev_h Wh + b).

    x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,) -> next_h (N, H).
    """
    check_recurrent("rnn_step_forward", x, prev_h, Wx, Wh, b)
    return torch.tanh(x @ Wx + prev_h @ Wh + b)


def rnn_forward(
    x: torch.Tensor, h0: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """A vanilla RNN over a whole sequence.

    x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,) -> h (N, T, H), the hidden state at
    every time step (h0 itself is not included). T >= 1.
    """
    check_recurrent("rnn_forward", x, h0, Wx, Wh, b, sequence=True)
    _, T, _ = x.shape
    # Project all inputs at once; only the recurrence must run step by step.
    x_proj = x @ Wx + b
    prev_h = h0
    states = []
    for t in range(T):
        prev_h = torch.tanh(x_proj[:, t] + prev_h @ Wh)
        states.append(prev_h)
    return torch.stack(states, dim=1)


def lstm_step_forward(
    x: torch.Tensor,
    prev_h: torch.Tensor,
    prev_c: torch.Tensor,
    Wx: torch.Tensor,
    Wh: torch.Tensor,
    b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step.

    x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)
    -> (next_h (N, H), next_c (N, H)). Gate order i, f, o, g:
    next_c = f * prev_c + i * g, next_h = o * tanh(next_c).
    """
    check_recurrent("lstm_step_forward", x, prev_h, Wx, Wh, b, gates=4, c=prev_c)
    return _lstm_cell(x @ Wx + b, prev_h, prev_c, Wh)


def _lstm_cell(
    x_proj: torch.Tensor, prev_h: torch.Tensor, prev_c: torch.Tensor, Wh: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The LSTM update given the already projected input x_proj = x Wx + b (N, 4H)."""
    H = prev_h.shape[1]
    activations = x_proj + prev_h @ Wh
    i = torch.sigmoid(activations[:, :H])
    f = torch.sigmoid(activations[:, H : 2 * H])
    o = torch.sigmoid(activations[:, 2 * H : 3 * H])
    g = torch.tanh(activations[:, 3 * H :])
    next_c = f * prev_c + i * g
    next_h = o * torch.tanh(next_c)
    return next_h, next_c


def lstm_forward(
    x: torch.Tensor, h0: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """An LSTM over a whole sequence; the initial cell state is zero.

    x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,) -> h (N, T, H). T >= 1.
    """
    check_recurrent("lstm_forward", x, h0, Wx, Wh, b, gates=4, sequence=True)
    _, T, _ = x.shape
    x_proj = x @ Wx + b
    prev_h, prev_c = h0, torch.zeros_like(h0)
    states = []
    for t in range(T):
        prev_h, prev_c = _lstm_cell(x_proj[:, t], prev_h, prev_c, Wh)
        states.append(prev_h)
    return torch.stack(states, dim=1)


def word_embedding_forward(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Look up word vectors: out[n, t] = W[x[n, t]].

    x (N, T) (or any shape) integer word ids in [0, V), W (V, D) -> out (N, T, D).
    """
    if len(shape_of(W)) != 2:
        raise ValueError(f"word_embedding_forward expects W of shape (V, D), got W "
                         f"{shape_of(W)} (x {shape_of(x)})")
    check_indices("word_embedding_forward", "word ids x", x, W.shape[0],
                  f"W {shape_of(W)} (V, D)")
    return W[x]


def temporal_affine_forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The same affine map at every time step.

    x (N, T, D), w (D, M), b (M,) -> out (N, T, M).
    """
    x_shape, w_shape, b_shape = shape_of(x), shape_of(w), shape_of(b)
    if len(x_shape) != 3 or len(w_shape) != 2 or w_shape[0] != x_shape[2] \
            or b_shape != (w_shape[1],):
        raise ValueError(f"temporal_affine_forward expects x (N, T, D), w (D, M), b (M,); got "
                         f"x {x_shape}, w {w_shape}, b {b_shape}")
    N, T, D = x.shape
    M = b.shape[0]
    return (x.reshape(N * T, D) @ w).reshape(N, T, M) + b


def temporal_softmax_loss(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy summed over the time steps where `mask` is true, divided by N.

    x (N, T, V) scores, y (N, T) target ids in [0, V), mask (N, T) bool (or 0/1)
    -> scalar loss, N >= 1. Masked-out positions contribute neither loss nor gradient.
    """
    x_shape = shape_of(x)
    if len(x_shape) != 3 or shape_of(y) != x_shape[:2] or shape_of(mask) != x_shape[:2]:
        raise ValueError(f"temporal_softmax_loss expects scores x (N, T, V), targets y (N, T) "
                         f"and mask (N, T); got x {x_shape}, y {shape_of(y)}, "
                         f"mask {shape_of(mask)}")
    check_nonempty("temporal_softmax_loss", f"scores x {x_shape}", x_shape[0])
    check_indices("temporal_softmax_loss", "targets y", y, x_shape[2],
                  f"scores x {x_shape} (N, T, V)")
    N, T, V = x.shape
    log_probs = F.log_softmax(x.reshape(N * T, V), dim=1)
    picked = log_probs.gather(1, y.reshape(N * T, 1).long()).reshape(N * T)
    keep = mask.reshape(N * T).to(torch.bool)
    # where() rather than a product, so that a masked -inf never turns into nan.
    losses = torch.where(keep, -picked, torch.zeros_like(picked))
    return losses.sum() / N
