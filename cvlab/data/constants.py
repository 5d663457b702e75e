"""The data layer's shared names and constants, each defined once.

- dataset names, as `dataset.name` takes them;
- CIFAR-10's class names, in label order (the order of the official batches' `label_names`);
- the per-channel mean and standard deviation (R, G, B, on the 0-1 scale) that the PyTorch
  notebook of the course normalizes CIFAR-10 with: transforms.Normalize(CIFAR10_MEAN,
  CIFAR10_STD). They are the course's values, kept as published (the measured statistics of
  the training set differ in the third decimal: `channel_mean_std` computes those).
"""

from __future__ import annotations

AUTO = "auto"  # CIFAR-10 when found locally, else the synthetic set (captioning: COCO, else
# the shapes set)
IMAGE_DATASETS = ("cifar10", "synthetic")
CAPTION_DATASETS = ("coco", "shapes_captions")
DATASET_NAMES = (AUTO, *IMAGE_DATASETS, *CAPTION_DATASETS)

# The captioning vocabularies' special tokens, in their ids' order: <NULL> (0) pads and is
# masked out, <START> and <END> frame each caption, <UNK> stands for a rare word.
NULL, START, END, UNK = "<NULL>", "<START>", "<END>", "<UNK>"
SPECIAL_TOKENS = (NULL, START, END, UNK)


def caption_words(caption: str) -> str:
    """A caption's words without <START>, <END> and <NULL> (what a reader compares and reads)."""
    return " ".join(word for word in caption.split() if word not in (START, END, NULL))

CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                       "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
