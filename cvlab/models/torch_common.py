"""The options every PyTorch classifier shares: its dtype, data augmentation and test-time
augmentation (they are part of a recipe, so they live with the model).

    crop_pad      random translation by up to that many pixels (0: off)
    flip          none | random | alternating (every other epoch mirrors each image)
    padding_mode  reflect | zeros (for the translation)
    tta           none | flip | flip_translate (test-time augmentation)
"""

from __future__ import annotations

from dataclasses import dataclass

from cvlab.config.train import ModelConfig
from cvlab.validation import check, check_choice
from cvlab.vocab import DTYPES, FLIP_MODES, PAD_MODES, TTA_LEVELS


@dataclass
class TorchModelConfig(ModelConfig):
    """Fields shared by the torch classifiers: dtype and augmentation."""

    type: str = ""
    dtype: str = "float32"
    crop_pad: int = 0
    flip: str = "none"
    padding_mode: str = "reflect"
    tta: str = "none"

    def __post_init__(self) -> None:
        check_choice("dtype", self.dtype, DTYPES)
        check(0 <= self.crop_pad <= 8, "crop_pad", self.crop_pad, "an integer in [0, 8]")
        check_choice("flip", self.flip, FLIP_MODES)
        check_choice("padding_mode", self.padding_mode, PAD_MODES)
        check_choice("tta", self.tta, TTA_LEVELS)
