"""CaptioningRNN: the course's recurrent image-captioning model, on torch tensors.

Image features (N, D) are projected to the initial hidden state; words are embedded,
run through a vanilla RNN or an LSTM, and mapped to vocabulary scores at every time step.
Autograd computes the gradients of `loss`; the solver owns the optimizer.

Shapes: N minibatch, D image feature size, W word vector size, H hidden size,
V vocabulary size, T caption length (17 ids in the COCO layout).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from cvlab.data.constants import END, NULL, START
from cvlab.defaults import CAPTIONING_RNN
from cvlab.layers._validate import check_indices, check_nonempty, shape_of
from cvlab.layers.rnn import (
    lstm_forward,
    lstm_step_forward,
    rnn_forward,
    rnn_step_forward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_forward,
)
from cvlab.vocab import CELL_TYPES

PARAM_NAMES = ("W_embed", "W_proj", "b_proj", "Wx", "Wh", "b", "W_vocab", "b_vocab")


class CaptioningRNN:
    """features -> h0 = features W_proj + b_proj -> RNN/LSTM over embedded words -> scores.

    Parameters live in `self.params` (names as in the course: W_proj, b_proj, W_embed, Wx,
    Wh, b, W_vocab, b_vocab) as leaf tensors with requires_grad. Initialization draws, in
    this order, W_embed ~ randn/100, W_proj ~ randn/sqrt(D), Wx ~ randn/sqrt(W),
    Wh ~ randn/sqrt(H), W_vocab ~ randn/sqrt(H) (biases zero) from `generator`, defaulting to
    torch's global RNG (so `torch.manual_seed(...)` before construction reproduces a run).
    """

    def __init__(
        self,
        word_to_idx: Mapping[str, int],
        input_dim: int = CAPTIONING_RNN["input_dim"],
        wordvec_dim: int = CAPTIONING_RNN["wordvec_dim"],
        hidden_dim: int = CAPTIONING_RNN["hidden_dim"],
        cell_type: str = CAPTIONING_RNN["cell_type"],
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if cell_type not in CELL_TYPES:
            raise ValueError(f'Invalid cell_type "{cell_type}"; allowed: rnn, lstm')
        self.cell_type = cell_type
        self.dtype = dtype
        self.device = torch.device(device)
        self.word_to_idx = dict(word_to_idx)
        self.idx_to_word = {i: w for w, i in self.word_to_idx.items()}
        self.input_dim, self.wordvec_dim, self.hidden_dim = input_dim, wordvec_dim, hidden_dim

        vocab_size = len(self.word_to_idx)
        self._null = self.word_to_idx[NULL]
        self._start = self.word_to_idx.get(START)
        self._end = self.word_to_idx.get(END)

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=generator, dtype=torch.float64)

        gates = {"lstm": 4, "rnn": 1}[cell_type]
        params = {
            "W_embed": randn(vocab_size, wordvec_dim) / 100,
            "W_proj": randn(input_dim, hidden_dim) / math.sqrt(input_dim),
            "b_proj": torch.zeros(hidden_dim),
            "Wx": randn(wordvec_dim, gates * hidden_dim) / math.sqrt(wordvec_dim),
            "Wh": randn(hidden_dim, gates * hidden_dim) / math.sqrt(hidden_dim),
            "b": torch.zeros(gates * hidden_dim),
            "W_vocab": randn(hidden_dim, vocab_size) / math.sqrt(hidden_dim),
            "b_vocab": torch.zeros(vocab_size),
        }
        self.params: dict[str, torch.Tensor] = {
            name: value.to(device=self.device, dtype=dtype).requires_grad_()
            for name, value in params.items()
        }

    def _check_features(self, what: str, features: np.ndarray | torch.Tensor) -> None:
        shape = shape_of(features)
        if len(shape) != 2 or shape[1] != self.input_dim:
            raise ValueError(f"{what} expects image features of shape (N, D) = (N, "
                             f"{self.input_dim}), got features {shape}")

    def _tensor(self, values: np.ndarray | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(values).to(device=self.device, dtype=dtype)

    def loss(self, features: np.ndarray | torch.Tensor, captions: np.ndarray | torch.Tensor
             ) -> torch.Tensor:
        """Training loss of a minibatch (a scalar tensor; call .backward() for gradients).

        features (N, D), captions (N, T) integer word ids in [0, V), N >= 1, T >= 2:
        <START> words <END> <NULL>... The model reads captions[:, :-1] and predicts
        captions[:, 1:]; <NULL> targets are masked out. Bad shapes or ids raise ValueError
        before anything is computed.
        """
        self._check_features("CaptioningRNN.loss", features)
        features_shape, captions_shape = shape_of(features), shape_of(captions)
        if len(captions_shape) != 2 or captions_shape[0] != features_shape[0] \
                or captions_shape[1] < 2:
            raise ValueError(f"CaptioningRNN.loss expects captions (N, T) with T >= 2 for "
                             f"features (N, D); got features {features_shape} and captions "
                             f"{captions_shape}")
        check_nonempty("CaptioningRNN.loss", f"features {features_shape}, captions "
                       f"{captions_shape}", captions_shape[0])
        check_indices("CaptioningRNN.loss", "word ids in captions", captions,
                      len(self.word_to_idx), f"a vocabulary of V = {len(self.word_to_idx)} words")
        features = self._tensor(features, self.dtype)
        captions = self._tensor(captions, torch.long)
        captions_in, captions_out = captions[:, :-1], captions[:, 1:]
        mask = captions_out != self._null
        p = self.params

        h0 = features @ p["W_proj"] + p["b_proj"]
        words = word_embedding_forward(captions_in, p["W_embed"])
        recurrent = rnn_forward if self.cell_type == "rnn" else lstm_forward
        hidden = recurrent(words, h0, p["Wx"], p["Wh"], p["b"])
        scores = temporal_affine_forward(hidden, p["W_vocab"], p["b_vocab"])
        return temporal_softmax_loss(scores, captions_out, mask)

    @torch.no_grad()
    def sample(self, features: np.ndarray | torch.Tensor, max_length: int = 30) -> np.ndarray:
        """Greedy decoding: start from <START>, feed back the highest-scoring word each step.

        features (N, D) -> captions (N, max_length) int64 word ids, the first generated word
        first (<START> itself is not included). Steps after <END> keep decoding, as in the
        course; decode_captions stops at <END>.
        """
        if self._start is None:
            raise ValueError("sampling needs a <START> token in word_to_idx")
        self._check_features("CaptioningRNN.sample", features)
        features = self._tensor(features, self.dtype)
        p = self.params
        N = features.shape[0]
        captions = torch.full((N, max_length), self._null, dtype=torch.long, device=self.device)
        h = features @ p["W_proj"] + p["b_proj"]
        c = torch.zeros_like(h)
        words = torch.full((N,), self._start, dtype=torch.long, device=self.device)
        for t in range(max_length):
            x = word_embedding_forward(words, p["W_embed"])
            if self.cell_type == "rnn":
                h = rnn_step_forward(x, h, p["Wx"], p["Wh"], p["b"])
            else:
                h, c = lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])
            scores = h @ p["W_vocab"] + p["b_vocab"]
            words = scores.argmax(dim=1)
            captions[:, t] = words
        return captions.cpu().numpy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters as detached CPU tensors (for checkpoints)."""
        return {name: value.detach().cpu().clone() for name, value in self.params.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Copy saved parameters in; names and shapes must match this model."""
        for name, value in self.params.items():
            if name not in state or tuple(state[name].shape) != tuple(value.shape):
                got = tuple(state[name].shape) if name in state else "missing"
                raise ValueError(f"parameter {name}: expected shape {tuple(value.shape)}, "
                                 f"got {got}")
            with torch.no_grad():
                value.copy_(state[name].to(device=value.device, dtype=value.dtype))
