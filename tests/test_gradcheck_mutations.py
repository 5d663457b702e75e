"""Every gradient check fails by at least 100x its tolerance when the backward it checks is
broken the way hand-written backward passes break: a wrong sign, a missing term, a mean for a
sum, an off-by-one, a flipped kernel, a transposed layout, a gradient that stops flowing.

Together with the margins of correct code (>= 10x below the tolerances, docs/gradcheck.md),
this is what makes the tolerances meaningful: not loose enough to let a bug through.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import cvlab.layers as L
import cvlab.layers.sandwich as sandwich
from cvlab.checks import get_check

pytestmark = pytest.mark.numerics

MARGIN = 100


def worst_ratio(rows) -> float:
    """The largest error / tolerance over the rows (inf for a failed row with tolerance 0)."""
    ratios = [row.error / row.tolerance if row.tolerance > 0 else
              (math.inf if row.error > 0 else 0.0) for row in rows]
    return max(ratios)


# --- numpy layers: wrappers that break the correct backward ---------------------------------

def db_mean_not_sum(backward):
    def broken(dout, cache, **options):
        dx, dw, _ = backward(dout, cache, **options)
        return dx, dw, dout.mean(axis=0)
    return broken


def dx_wrong_sign(backward):
    def broken(dout, cache, **options):
        dx, *rest = backward(dout, cache, **options)
        return (-dx, *rest)
    return broken


def relu_mask_from_dout(_):
    return lambda dout, cache, **_: dout * (dout > 0)


def loss_dx_not_divided_by_n(loss_fn):
    def broken(x, y):
        loss, dx = loss_fn(x, y)
        return loss, dx * x.shape[0]
    return broken


def svm_without_correct_class_term(loss_fn):
    def broken(x, y):
        loss, dx = loss_fn(x, y)
        dx = dx.copy()
        dx[np.arange(len(y)), y] = 0
        return loss, dx
    return broken


def batchnorm_without_mean_term(_):
    def broken(dout, cache, **options):
        x_hat, _, _, inv_std, gamma = cache
        dx_hat = dout * gamma
        dx = inv_std * (dx_hat - x_hat * (dx_hat * x_hat).mean(axis=0))
        return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
    return broken


def batchnorm_without_variance_term(_):
    def broken(dout, cache, **options):
        x_hat, _, _, inv_std, gamma = cache
        dx_hat = dout * gamma
        dx = inv_std * (dx_hat - dx_hat.mean(axis=0))
        return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
    return broken


def layernorm_over_the_batch_axis(_):
    def broken(dout, cache, **options):
        x_hat, inv_std, gamma = cache
        dx_hat = dout * gamma
        dx = inv_std * (dx_hat - dx_hat.mean(axis=0) - x_hat * (dx_hat * x_hat).mean(axis=0))
        return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
    return broken


def dropout_without_rescaling(_):
    def broken(dout, cache, **options):
        _, mask = cache
        return dout * (mask != 0)
    return broken


def conv_dw_flipped(backward):
    def broken(dout, cache, **options):
        dx, dw, db = backward(dout, cache, **options)
        return dx, dw[:, :, ::-1, ::-1], db
    return broken


def conv_dx_cropped_one_pixel_off(backward):
    def broken(dout, cache, **options):
        dx, dw, db = backward(dout, cache, **options)
        shifted = np.zeros_like(dx)
        shifted[..., 1:, 1:] = dx[..., :-1, :-1]
        return shifted, dw, db
    return broken


def pool_to_the_window_corner(_):
    """Routes each output's gradient to the top-left entry of its window, not to the max."""
    def broken(dout, cache, **options):
        x, pool_param = cache
        dx = np.zeros_like(x)
        stride = pool_param["stride"]
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                dx[:, :, i * stride, j * stride] += dout[:, :, i, j]
        return dx
    return broken


def pool_overwrites_overlapping_windows(forward_fast):
    """Fast max pool whose backward assigns instead of accumulating: right for tiling windows,
    wrong where windows overlap (the check's 3x3 stride-2 comparison with the naive layer)."""
    def forward(x, pool_param):
        out, _ = forward_fast(x, pool_param)
        return out, (x, pool_param)

    def backward(dout, cache, **options):
        x, p = cache
        N, C = x.shape[:2]
        ph, pw, s = p["pool_height"], p["pool_width"], p["stride"]
        dx = np.zeros_like(x)
        n, c = np.ogrid[:N, :C]
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                window = x[:, :, i * s:i * s + ph, j * s:j * s + pw].reshape(N, C, -1)
                row, col = np.divmod(window.argmax(axis=2), pw)
                dx[n, c, i * s + row, j * s + col] = dout[:, :, i, j]
        return dx
    return forward, backward


def spatial_rows_not_transposed_back(backward):
    def broken(dout, cache, **options):
        dx, dgamma, dbeta = backward(dout, cache, **options)
        return dx.transpose(0, 2, 3, 1).reshape(dx.shape), dgamma, dbeta
    return broken


def dgamma_copied_from_dbeta(backward):
    def broken(dout, cache, **options):
        dx, _, dbeta = backward(dout, cache, **options)
        return dx, dbeta, dbeta
    return broken


def skipped(_):
    """A layer left out of a backward pass (its gradient passed through unchanged)."""
    return lambda dout, cache, **_: dout


def pooled_gradient_read_one_column_off(backward):
    """An index bug in routing the pooled gradient: each window gets its neighbour's."""
    def broken(dout, cache, **options):
        return backward(np.roll(dout, 1, axis=3), cache, **options)
    return broken


def dgamma_wrong_sign(backward):
    def broken(dout, cache, **options):
        dx, dgamma, dbeta = backward(dout, cache, **options)
        return dx, -dgamma, dbeta
    return broken


NUMPY_MUTATIONS = [
    ("affine", L, "affine_backward", db_mean_not_sum),
    ("affine", L, "affine_backward", dx_wrong_sign),
    ("relu", L, "relu_backward", relu_mask_from_dout),
    ("softmax", L, "softmax_loss", loss_dx_not_divided_by_n),
    ("svm", L, "svm_loss", svm_without_correct_class_term),
    ("batchnorm", L, "batchnorm_backward", batchnorm_without_mean_term),
    ("batchnorm_alt", L, "batchnorm_backward_alt", batchnorm_without_variance_term),
    ("layernorm", L, "layernorm_backward", layernorm_over_the_batch_axis),
    ("dropout", L, "dropout_backward", dropout_without_rescaling),
    ("conv", L, "conv_backward_naive", conv_dw_flipped),
    ("conv_fast", L, "conv_backward_fast", conv_dx_cropped_one_pixel_off),
    ("maxpool", L, "max_pool_backward_naive", pool_to_the_window_corner),
    ("spatial_batchnorm", L, "spatial_batchnorm_backward", spatial_rows_not_transposed_back),
    ("spatial_groupnorm", L, "spatial_groupnorm_backward", dgamma_copied_from_dbeta),
    ("affine_relu", sandwich, "relu_backward", skipped),
    ("affine_norm_relu", sandwich, "dropout_backward", skipped),
    ("conv_relu", sandwich, "relu_backward", relu_mask_from_dout),
    ("conv_relu_pool", L, "conv_relu_pool_backward", pooled_gradient_read_one_column_off),
    ("conv_bn_relu", sandwich, "spatial_batchnorm_backward", dgamma_wrong_sign),
]


@pytest.mark.parametrize(
    "check, module, name, mutation",
    [pytest.param(*m, id=f"{m[0]}-{m[3].__name__}") for m in NUMPY_MUTATIONS])
def test_a_broken_layer_backward_fails_its_check_by_100x(check, module, name, mutation,
                                                          monkeypatch):
    monkeypatch.setattr(module, name, mutation(getattr(module, name)))
    assert worst_ratio(get_check(check)(np.random.RandomState(231))) >= MARGIN


def test_overwriting_instead_of_accumulating_fails_maxpool_fast_by_100x(monkeypatch):
    forward, backward = pool_overwrites_overlapping_windows(L.max_pool_forward_fast)
    monkeypatch.setattr(L, "max_pool_forward_fast", forward)
    monkeypatch.setattr(L, "max_pool_backward_fast", backward)
    rows = get_check("maxpool_fast")(np.random.RandomState(231))
    assert all(row.passed for row in rows if "fast vs naive" not in row.what)  # tiling: right
    assert worst_ratio(rows) >= MARGIN


@pytest.mark.parametrize("name, mutation", [("relu_backward", skipped),
                                            ("batchnorm_backward_alt",
                                             batchnorm_without_mean_term),
                                            ("dropout_backward", dropout_without_rescaling)])
def test_a_broken_fc_net_backward_fails_the_model_check_by_100x(name, mutation, monkeypatch):
    import cvlab.models.fc_net as fc_net
    from cvlab.checks.models import fc_net_rows

    monkeypatch.setattr(fc_net, name, mutation(getattr(fc_net, name)))
    # the setting that uses all three (one of the check's six, to keep the test short)
    rows = fc_net_rows(np.random.RandomState(231), [("batchnorm", 0.5, 3.14)])
    assert worst_ratio(rows) >= MARGIN


@pytest.mark.parametrize("name, mutation", [
    ("conv_relu_pool_backward", conv_dw_flipped),
    ("conv_relu_pool_backward", pooled_gradient_read_one_column_off),
    ("relu_backward", skipped)])
def test_a_broken_cnn_backward_fails_the_model_check_by_100x(name, mutation, monkeypatch):
    import cvlab.models.cnn as cnn
    from cvlab.checks.models import cnn_rows

    monkeypatch.setattr(cnn, name, mutation(getattr(cnn, name)))
    assert worst_ratio(cnn_rows(np.random.RandomState(231), (0.1,))) >= MARGIN  # one of two


# --- recurrent layers (autograd): a wrong hand-written derivative, a gradient cut off --------

def recurrent_mutations():
    import torch

    import cvlab.layers.rnn as R

    class TanhMissingSquare(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            out = torch.tanh(a)
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, grad):
            (out,) = ctx.saved_tensors
            return grad * (1 - out)  # should be 1 - out**2

    class EmbeddingAssigns(torch.autograd.Function):
        @staticmethod
        def forward(ctx, W, x):
            ctx.save_for_backward(x)
            ctx.num_words = W.shape[0]
            return W[x]

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            dW = grad.new_zeros(ctx.num_words, grad.shape[-1])
            dW.index_put_((x.reshape(-1),), grad.reshape(-1, grad.shape[-1]))  # no accumulate
            return dW, None

    def rnn_step(x, prev_h, Wx, Wh, b):
        return TanhMissingSquare.apply(x @ Wx + prev_h @ Wh + b)

    def rnn_truncated(x, h0, Wx, Wh, b):
        h, states = h0, []
        for t in range(x.shape[1]):
            h = R.rnn_step_forward(x[:, t], h.detach(), Wx, Wh, b)
            states.append(h)
        return torch.stack(states, dim=1)

    def lstm_step_cell_cut(x, prev_h, prev_c, Wx, Wh, b):
        return R._lstm_cell(x @ Wx + b, prev_h, prev_c.detach(), Wh)

    def lstm_cell_cut(x, h0, Wx, Wh, b):
        h, c, states = h0, torch.zeros_like(h0), []
        for t in range(x.shape[1]):
            h, c = R._lstm_cell(x[:, t] @ Wx + b, h, c.detach(), Wh)
            states.append(h)
        return torch.stack(states, dim=1)

    def embedding(x, W):
        return EmbeddingAssigns.apply(W, x)

    temporal_affine = R.temporal_affine_forward

    def affine_bias_cut(x, w, b):
        return temporal_affine(x, w, b.detach())

    def softmax_normalizer_cut(x, y, mask):
        log_norm = torch.logsumexp(x, dim=2).detach()
        picked = x.gather(2, y.unsqueeze(2)).squeeze(2)
        return -((picked - log_norm) * mask).sum() / x.shape[0]

    return {
        "rnn_step": ("rnn_step_forward", rnn_step),
        "rnn": ("rnn_forward", rnn_truncated),
        "lstm_step": ("lstm_step_forward", lstm_step_cell_cut),
        "lstm": ("lstm_forward", lstm_cell_cut),
        "word_embedding": ("word_embedding_forward", embedding),
        "temporal_affine": ("temporal_affine_forward", affine_bias_cut),
        "temporal_softmax": ("temporal_softmax_loss", softmax_normalizer_cut),
    }


@pytest.mark.parametrize("check", ["rnn_step", "rnn", "lstm_step", "lstm", "word_embedding",
                                   "temporal_affine", "temporal_softmax"])
def test_a_broken_recurrent_layer_fails_its_check_by_100x(check, monkeypatch):
    import cvlab.layers.rnn as R

    name, broken = recurrent_mutations()[check]
    monkeypatch.setattr(R, name, broken)
    assert worst_ratio(get_check(check)(np.random.RandomState(231))) >= MARGIN


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_a_captioner_whose_h0_gradient_is_cut_fails_by_100x(cell, monkeypatch):
    import cvlab.models.nets.captioning as captioning

    name = f"{cell}_forward"
    correct = getattr(captioning, name)
    monkeypatch.setattr(captioning, name,
                        lambda x, h0, Wx, Wh, b: correct(x, h0.detach(), Wx, Wh, b))
    assert worst_ratio(get_check(f"captioning_{cell}")(np.random.RandomState(231))) >= MARGIN
