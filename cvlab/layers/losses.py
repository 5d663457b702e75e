"""Classification losses on scores: softmax (cross-entropy) and multiclass SVM (hinge).

Both are numerically stable: scores are shifted by their row maximum and the softmax loss
uses log-sum-exp, so logits of magnitude 1e4 and probabilities that underflow to 0 give
finite losses without warnings.
"""

from __future__ import annotations

import numpy as np


def _check_scores(x: np.ndarray, y: np.ndarray, what: str) -> None:
    if np.ndim(x) != 2 or np.shape(y) != (x.shape[0],):
        raise ValueError(f"{what} expects scores x of shape (N, C) and labels y of shape (N,), "
                         f"got x {np.shape(x)} and y {np.shape(y)}")
    if len(y) and (y.min() < 0 or y.max() >= x.shape[1]):
        raise ValueError(f"{what}: labels y must lie in [0, {x.shape[1]}) for scores x "
                         f"{x.shape}, got labels from {y.min()} to {y.max()}")


def softmax_loss(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy loss averaged over the batch.

    Inputs: x (N, C) scores, y (N,) labels in 0 <= y[i] < C.
    Returns (loss, dx) with dx (N, C) the gradient of the loss with respect to x.
    """
    _check_scores(x, y, "softmax_loss")
    N = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(N)
    loss = -log_probs[rows, y].sum() / N
    dx = np.exp(log_probs)
    dx[rows, y] -= 1
    dx /= N
    return loss, dx


def svm_loss(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Multiclass SVM (hinge, margin 1) loss averaged over the batch.

    Inputs: x (N, C) scores, y (N,) labels in 0 <= y[i] < C.
    Returns (loss, dx) with dx (N, C).
    """
    _check_scores(x, y, "svm_loss")
    N = x.shape[0]
    rows = np.arange(N)
    correct = x[rows, y][:, None]
    margins = np.maximum(0, x - correct + 1)
    margins[rows, y] = 0
    loss = margins.sum() / N
    positive = (margins > 0).astype(x.dtype)
    dx = positive
    dx[rows, y] -= positive.sum(axis=1)
    dx /= N
    return loss, dx
