"""`model=caption_rnn|caption_lstm`: the course's CaptioningRNN (image features -> h0 ->
RNN/LSTM over word vectors -> word scores; the model code is cvlab.models.nets.captioning).

The input size is taken from the dataset's features (512 for the PCA'd features).
Evaluation: greedy captions of up to `max_length` words are scored with BLEU every
`bleu_every` epochs (0: only at the end); `gallery_samples` images per split are saved to
samples.json for `cvlab plot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvlab.config.train import ModelConfig
from cvlab.defaults import CAPTIONING_RNN
from cvlab.families.captioning import CAPTIONING
from cvlab.models.registry import ModelSpec, register
from cvlab.validation import check, check_choice, check_positive
from cvlab.vocab import CELL_TYPES, DTYPES


@dataclass
class CaptioningConfig(ModelConfig):
    """CaptioningRNN: image features -> h0 -> RNN/LSTM over word vectors -> word scores."""

    type: str = "captioning"
    cell_type: str = CAPTIONING_RNN["cell_type"]
    wordvec_dim: int = CAPTIONING_RNN["wordvec_dim"]  # its notebook trains 256 / 512
    hidden_dim: int = CAPTIONING_RNN["hidden_dim"]
    dtype: str = "float32"
    max_length: int = 30
    bleu_every: int = 1
    gallery_samples: int = 8

    def __post_init__(self) -> None:
        check_choice("cell_type", self.cell_type, CELL_TYPES)
        check_positive("wordvec_dim", self.wordvec_dim)
        check_positive("hidden_dim", self.hidden_dim)
        check_choice("dtype", self.dtype, DTYPES)
        check_positive("max_length", self.max_length)
        check(self.bleu_every >= 0, "bleu_every", self.bleu_every, "an integer >= 0")
        check(self.gallery_samples >= 0, "gallery_samples", self.gallery_samples,
              "an integer >= 0")


def build(cfg: CaptioningConfig, word_to_idx: dict[str, int], input_dim: int, seed: int,
          device: Any) -> Any:
    """The CaptioningRNN of `cfg` for `input_dim`-d features, its weights drawn from a
    generator seeded with `seed`."""
    import torch

    from cvlab.models.nets.captioning import CaptioningRNN

    return CaptioningRNN(word_to_idx, input_dim=input_dim, wordvec_dim=cfg.wordvec_dim,
                         hidden_dim=cfg.hidden_dim, cell_type=cfg.cell_type,
                         dtype=torch.float64 if cfg.dtype == "float64" else torch.float32,
                         generator=torch.Generator().manual_seed(seed), device=device)


SPEC = register(ModelSpec(name="captioning", family=CAPTIONING, schema=CaptioningConfig,
                          build=build))
