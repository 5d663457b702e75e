"""Gradient checks of the numpy models: `cvlab gradcheck layer=fc_net` and `layer=cnn`.

Both follow the course's notebooks: small float64 models, every parameter compared with
centered differences (eval_numerical_gradient), tolerances as the course prints them for
correct code (docs/course.md section 1).
"""

from __future__ import annotations

import numpy as np

from cvlab.checks import CheckRow, register
from cvlab.gradcheck import eval_numerical_gradient, rel_error

# FC net: W 1e-4..1e-10, b 1e-8..1e-10, gamma/beta ~1e-8 (course, correct code); the bounds
# leave the usual margin for relu kinks hit by the numeric differences.
FC_TOLERANCES = {"W": 1e-4, "b": 1e-6, "gamma": 1e-6, "beta": 1e-6}
CNN_TOLERANCE = 1e-2  # ThreeLayerConvNet: up to ~1e-2 (kinks of relu / max pool)

# (normalization, dropout keep ratio, reg): every normalization plain, and with dropout + reg.
FC_SETTINGS = [
    (normalization, keep_ratio, reg)
    for normalization in ("none", "batchnorm", "layernorm")
    for keep_ratio, reg in ((1.0, 0.0), (0.5, 3.14))
]


def _tolerance(name: str) -> float:
    return FC_TOLERANCES[name.rstrip("0123456789")]


def model_rows(model, X: np.ndarray, y: np.ndarray, prefix: str,
               tolerance_of, zero_gradients: tuple[str, ...] = ()) -> list[CheckRow]:
    """Compare every analytic gradient of `model` on (X, y) with the numeric one.

    Parameters in `zero_gradients` have an exactly zero true gradient (a bias followed by a
    normalization); their relative error would only compare rounding noise, so the row holds
    the largest absolute difference instead, against 1e-8.
    """
    _, grads = model.loss(X, y)
    rows = []
    for name in sorted(grads):
        def f(_: np.ndarray) -> float:
            return float(model.loss(X, y)[0])

        numeric = eval_numerical_gradient(f, model.params[name], verbose=False, h=1e-5)
        if name in zero_gradients:
            error = float(np.max(np.abs(numeric - grads[name])))
            rows.append(CheckRow(f"{prefix}d{name} (zero, abs)", error, 1e-8))
        else:
            rows.append(CheckRow(f"{prefix}d{name}", rel_error(numeric, grads[name]),
                                 tolerance_of(name)))
    return rows


@register("fc_net")
def check_fc_net(rng: np.random.RandomState) -> list[CheckRow]:
    """FullyConnectedNet [10, 12] on 15 features, for every normalization, plain and with
    (seeded) dropout and reg 3.14."""
    from cvlab.models.fc_net import FullyConnectedNet

    D, H1, H2, C = 15, 10, 12, 10
    rows: list[CheckRow] = []
    for normalization, keep_ratio, reg in FC_SETTINGS:
        # Batchnorm needs a few samples for meaningful statistics.
        n = 2 if normalization == "none" else 4
        X = rng.randn(n, D)
        y = rng.randint(C, size=(n,))
        model = FullyConnectedNet(
            [H1, H2], input_dim=D, num_classes=C, dropout_keep_ratio=keep_ratio,
            normalization=normalization, reg=reg, weight_scale=5e-2, dtype=np.float64,
            seed=123, rng=rng,
        )
        prefix = f"{normalization},keep={keep_ratio:g},reg={reg:g}: "
        # The biases of the normalized layers cancel out: their gradient is exactly zero.
        zero = ("b1", "b2") if normalization != "none" else ()
        rows += model_rows(model, X, y, prefix, _tolerance, zero)
    return rows


@register("cnn")
def check_cnn(rng: np.random.RandomState) -> list[CheckRow]:
    """ThreeLayerConvNet (3 filters 3x3, hidden 7) on 2 inputs (3, 16, 16), reg 0 and 0.5."""
    from cvlab.models.cnn import ThreeLayerConvNet

    num_inputs, input_dim, num_classes = 2, (3, 16, 16), 10
    rows: list[CheckRow] = []
    for reg in (0.0, 0.5):
        X = rng.randn(num_inputs, *input_dim)
        y = rng.randint(num_classes, size=num_inputs)
        model = ThreeLayerConvNet(num_filters=3, filter_size=3, input_dim=input_dim,
                                  hidden_dim=7, weight_scale=1e-2, reg=reg, dtype=np.float64,
                                  rng=rng)
        rows += model_rows(model, X, y, f"reg={reg:g}: ", lambda _: CNN_TOLERANCE)
    return rows
