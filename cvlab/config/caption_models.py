"""Schema of the captioning model (`cvlab train model=caption_rnn|caption_lstm`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cvlab.config import check, check_choice, check_positive
from cvlab.config.train import DTYPES, MODELS


@MODELS.register("captioning")
@dataclass
class CaptioningConfig:
    """CaptioningRNN: image features -> h0 -> RNN/LSTM over word vectors -> word scores.

    The input size is taken from the dataset's features (512 for the PCA'd features).
    Evaluation: greedy captions of up to `max_length` words are scored with BLEU every
    `bleu_every` epochs (0: only at the end) on `num_train_samples` training images and
    `num_val_samples` validation images (null: all); `gallery_samples` images per split are
    saved to samples.json for `cvlab plot`.
    """

    family: ClassVar[str] = "captioning"
    type: str = "captioning"
    cell_type: str = "rnn"
    wordvec_dim: int = 256
    hidden_dim: int = 512
    dtype: str = "float32"
    max_length: int = 30
    bleu_every: int = 1
    gallery_samples: int = 8

    def __post_init__(self) -> None:
        check_choice("cell_type", self.cell_type, ("rnn", "lstm"))
        check_positive("wordvec_dim", self.wordvec_dim)
        check_positive("hidden_dim", self.hidden_dim)
        check_choice("dtype", self.dtype, DTYPES)
        check_positive("max_length", self.max_length)
        check(self.bleu_every >= 0, "bleu_every", self.bleu_every, "an integer >= 0")
        check(self.gallery_samples >= 0, "gallery_samples", self.gallery_samples,
              "an integer >= 0")
