"""RawData: a dataset's full training and test arrays, before they are cut into splits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RawData:
    """Full training and test sets: X_* uint8 (N, 3, 32, 32) (possibly memory maps of a
    verified cache), y_* integer labels (N,), the class names in label order, a description
    of the source, whether the test set is sorted by class, and free-form info (cache
    folder, format) for reports."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str
    test_is_sorted: bool = False
    info: dict = field(default_factory=dict)
