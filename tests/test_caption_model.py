"""CaptioningRNN: course loss values, a direct computation, greedy sampling, overfitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cvlab.models.nets.captioning import PARAM_NAMES, CaptioningRNN
from cvlab.train.caption_solver import CaptioningSolver

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.numerics]


def linspace_model(cell_type: str) -> tuple[CaptioningRNN, np.ndarray, np.ndarray]:
    N, D, W, H = 10, 20, 30, 40
    word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
    V, T = len(word_to_idx), 13
    model = CaptioningRNN(word_to_idx, input_dim=D, wordvec_dim=W, hidden_dim=H,
                          cell_type=cell_type, dtype=torch.float64)
    for k, v in model.params.items():
        model.params[k] = torch.linspace(-1.4, 1.3, steps=v.numel(),
                                         dtype=torch.float64).reshape(*v.shape)
    low, high = (-1.5, 0.3) if cell_type == "rnn" else (-0.5, 1.7)
    features = np.linspace(low, high, num=N * D).reshape(N, D)
    captions = (np.arange(N * T) % V).reshape(N, T)
    return model, features, captions


def direct_loss(model: CaptioningRNN, features: np.ndarray, captions: np.ndarray) -> float:
    """The same model written out in numpy, step by step."""
    p = {k: v.detach().numpy() for k, v in model.params.items()}
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    h = features @ p["W_proj"] + p["b_proj"]
    c = np.zeros_like(h)
    H = h.shape[1]
    total = 0.0
    for step in range(captions.shape[1] - 1):
        x = p["W_embed"][captions[:, step]]
        a = x @ p["Wx"] + h @ p["Wh"] + p["b"]
        if model.cell_type == "rnn":
            h = np.tanh(a)
        else:
            c = sig(a[:, H:2 * H]) * c + sig(a[:, :H]) * np.tanh(a[:, 3 * H:])
            h = sig(a[:, 2 * H:3 * H]) * np.tanh(c)
        scores = h @ p["W_vocab"] + p["b_vocab"]
        scores = scores - scores.max(axis=1, keepdims=True)
        log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        target = captions[:, step + 1]
        keep = target != 0
        total -= log_p[np.arange(len(target)), target][keep].sum()
    return total / captions.shape[0]


@pytest.mark.parametrize("cell_type,course", [("rnn", 9.83235591003), ("lstm", 9.82445935443)])
def test_linspace_loss_matches_course_and_direct(cell_type, course):
    model, features, captions = linspace_model(cell_type)
    loss = float(model.loss(features, captions))
    assert loss == pytest.approx(course, abs=1e-8)
    assert loss == pytest.approx(direct_loss(model, features, captions), rel=1e-12)


def test_params_names_shapes_and_init():
    torch.manual_seed(0)
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2, "cat": 3}
    model = CaptioningRNN(word_to_idx, input_dim=8, wordvec_dim=6, hidden_dim=5, cell_type="lstm")
    shapes = {k: tuple(v.shape) for k, v in model.params.items()}
    assert shapes == {"W_embed": (4, 6), "W_proj": (8, 5), "b_proj": (5,), "Wx": (6, 20),
                      "Wh": (5, 20), "b": (20,), "W_vocab": (5, 4), "b_vocab": (4,)}
    assert set(model.params) == set(PARAM_NAMES)
    assert all(v.requires_grad and v.dtype == torch.float32 for v in model.params.values())
    assert float(model.params["b"].detach().abs().sum()) == 0.0
    assert float(model.params["W_embed"].detach().std()) < 0.05  # randn / 100
    with pytest.raises(ValueError, match="cell_type"):
        CaptioningRNN(word_to_idx, cell_type="gru")
    # seeded generator: same params twice
    a = CaptioningRNN(word_to_idx, 8, 6, 5, generator=torch.Generator().manual_seed(3))
    b = CaptioningRNN(word_to_idx, 8, 6, 5, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a.params[k], b.params[k]) for k in PARAM_NAMES)


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_sample_is_greedy_and_starts_after_start(cell_type):
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2, "cat": 3, "dog": 4}
    model = CaptioningRNN(word_to_idx, input_dim=6, wordvec_dim=4, hidden_dim=5,
                          cell_type=cell_type, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(1))
    features = np.random.RandomState(0).randn(3, 6)
    ids = model.sample(features, max_length=7)
    assert ids.shape == (3, 7)
    # Greedy: every sampled word is the argmax of the model's next-word scores given the
    # caption so far, starting from <START> (recomputed through the training path).
    prefix = np.column_stack([np.full(3, 1), ids])
    p = model.params
    with torch.no_grad():
        from cvlab.layers.rnn import lstm_forward, rnn_forward

        x = p["W_embed"][torch.from_numpy(prefix[:, :-1])]
        h0 = torch.from_numpy(features) @ p["W_proj"] + p["b_proj"]
        forward = rnn_forward if cell_type == "rnn" else lstm_forward
        scores = forward(x, h0, p["Wx"], p["Wh"], p["b"]) @ p["W_vocab"] + p["b_vocab"]
    np.testing.assert_array_equal(scores.argmax(dim=2).numpy(), ids)


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_tiny_overfit_drives_loss_down(cell_type):
    rng = np.random.RandomState(0)
    V, T, N = 12, 9, 10
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, V)}}
    captions = np.zeros((N, T), dtype=np.int32)
    for n in range(N):
        length = rng.randint(3, T - 1)
        captions[n, 0] = 1
        captions[n, 1:length] = rng.randint(3, V, size=length - 1)
        captions[n, length] = 2
    data = {"train_captions": captions, "train_image_idxs": np.arange(N),
            "train_features": rng.randn(N, 16).astype(np.float32),
            "train_urls": np.array([""] * N)}
    model = CaptioningRNN(word_to_idx, input_dim=16, wordvec_dim=16, hidden_dim=32,
                          cell_type=cell_type, generator=torch.Generator().manual_seed(0))
    solver = CaptioningSolver(model, data, learning_rate=2e-2, batch_size=10, num_epochs=60,
                              verbose=False, rng=np.random.RandomState(0))
    assert solver.train() == "completed"
    first, last = solver.loss_history[0], float(np.mean(solver.loss_history[-5:]))
    assert last < 0.1 < first
    # the overfit model reproduces its training captions greedily
    sampled = model.sample(data["train_features"], max_length=T - 1)
    for row, caption in zip(sampled, captions):
        end = list(caption).index(2)
        assert list(row[:end]) == list(caption[1:end + 1])


def test_bad_batches_raise_value_error_naming_the_shapes():
    model, features, captions = linspace_model("lstm")  # D = 20, V = 3, N = 10, T = 13
    bad = captions.copy()
    bad[4, 5] = 3
    with pytest.raises(ValueError, match=r"captions \(10, 13\) must lie in \[0, 3\).*0 to 3"):
        model.loss(features, bad)
    bad[4, 5] = -1
    with pytest.raises(ValueError, match=r"from -1 to 2"):
        model.loss(features, bad)
    with pytest.raises(ValueError, match=r"\(N, 20\), got features \(10, 19\)"):
        model.loss(features[:, :19], captions)
    with pytest.raises(ValueError, match=r"features \(10, 20\) and captions \(9, 13\)"):
        model.loss(features, captions[:9])
    with pytest.raises(ValueError, match=r"T >= 2.*captions \(10, 1\)"):
        model.loss(features, captions[:, :1])
    with pytest.raises(ValueError, match=r"empty batch \(features \(0, 20\), captions \(0, 13\)\)"):
        model.loss(features[:0], captions[:0])
    with pytest.raises(ValueError, match="integers"):
        model.loss(features, captions.astype(np.float64))
    assert torch.isfinite(model.loss(features, captions))
    sampler = CaptioningRNN({"<NULL>": 0, "<START>": 1, "<END>": 2}, input_dim=20,
                            wordvec_dim=4, hidden_dim=5)
    with pytest.raises(ValueError, match=r"CaptioningRNN.sample.*features \(10, 21\)"):
        sampler.sample(np.zeros((10, 21)))
    assert sampler.sample(np.zeros((2, 20)), max_length=3).shape == (2, 3)
