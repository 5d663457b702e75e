"""Classification losses on scores: softmax (cross-entropy) and multiclass SVM (hinge).

Both are numerically stable: scores are shifted by their row maximum and the softmax loss
uses log-sum-exp, so logits of magnitude 1e4 and probabilities that underflow to 0 give
finite losses without warnings. An empty batch, labels outside [0, C) or of a non-integer
dtype raise ValueError naming the shapes.
"""

from __future__ import annotations

import numpy as np

from cvlab.layers._validate import check_class_scores


def softmax_loss(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy loss averaged over the batch.

    Inputs: x (N, C) scores, y (N,) integer labels in 0 <= y[i] < C, N >= 1.
    Returns (loss, dx) with dx (N, C) the gradient of the loss with respect to x.
    """
    check_class_scores("softmax_loss", x, y)
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

    Inputs: x (N, C) scores, y (N,) integer labels in 0 <= y[i] < C, N >= 1.
    Returns (loss, dx) with dx (N, C).
    """
    check_class_scores("svm_loss", x, y)
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
