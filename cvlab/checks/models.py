"""Gradient checks of the numpy models: `cvlab gradcheck layer=fc_net` and `layer=cnn`.

Both follow the course's notebooks (small float64 models, every parameter's analytic gradient
against centered differences of the loss), conditioned so that the verdict does not depend on
the seed or the CPU (docs/gradcheck.md):
- Scale: the course draws weights with weight_scale 5e-2 (FC) and 1e-2 (CNN), which leaves
  pre-activations of 1e-2..1e-1; a step h = 1e-5 is then large for the normalizations (their third
  derivative grows like 1/std^3) and crosses relu / max-pool kinks often (the course prints CNN
  errors "up to ~1e-2" for that reason). Here the weights give pre-activations of order 1.
- Biases, gammas and betas are drawn at random rather than left at the init's zeros and ones,
  which put units exactly at a kink whenever dropout or relu zeroes a whole row.
- Kinks that a step still crosses are detected (cvlab.gradcheck.numerical_gradient_off_kinks)
  and those entries left out, counted in the row.
- Rows are judged on the norm error (bound MODEL_TOLERANCE); the course's max-over-entries
  relative error is recorded alongside. The biases of batch-normalized layers have a gradient
  of exactly zero: their row bounds max |numeric| (zero_gradient_tolerance).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cvlab.checks import (
    CheckRow,
    compare_gradients,
    register,
    zero_gradient_tolerance,
)
from cvlab.gradcheck import numerical_gradient_off_kinks

# (normalization, dropout keep ratio, reg): every normalization plain, and with dropout + reg.
FC_SETTINGS = [
    (normalization, keep_ratio, reg)
    for normalization in ("none", "batchnorm", "layernorm")
    for keep_ratio, reg in ((1.0, 0.0), (0.5, 3.14))
]
# Weight scale of the FC check: pre-activations of the hidden layers of order 1 (D = 15 inputs).
FC_WEIGHT_SCALE = 0.3
# Norm-error bound of the model checks. Their loss F reaches ~60 (reg 3.14 times weights of
# order 0.3), so each numeric entry carries eps F / h ~ 1.3e-9 of rounding, against gradients
# whose entries go down to ~1e-2 (gamma1 and beta1, three layers and a dropout from the loss):
# up to ~1e-7 relative. 1e-6 leaves 10x to that and 70x to the worst measured (1.4e-8).
MODEL_TOLERANCE = 1e-6


def _draw_constant_parameters(model, rng: np.random.RandomState) -> None:
    """Random biases, gammas and betas instead of the constant zeros and ones of the init.

    At the init, a sample whose hidden units are all dropped or dead feeds the next layer its
    biases alone: equal zeros, which put every relu after it (and a layer norm's input
    variance) exactly at a kink, where the function has no gradient to check.
    """
    for name, value in model.params.items():
        if name.startswith(("b", "beta")):
            model.params[name] = 0.5 * rng.randn(*value.shape)
        elif name.startswith("gamma"):
            model.params[name] = 1 + 0.2 * rng.randn(*value.shape)


# (model, parameter name, X, y) -> (numeric gradient, entries at kinks)
NumericGradient = Callable[[Any, str, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def model_rows(model, X: np.ndarray, y: np.ndarray, prefix: str,
               tolerance_of: Callable[[str], float] = lambda _: MODEL_TOLERANCE,
               zero_gradients: tuple[str, ...] = (),
               numeric_of: NumericGradient | None = None) -> list[CheckRow]:
    """Compare every analytic gradient of `model` on (X, y) with the numeric one (norm error,
    bound tolerance_of(parameter name)).

    Parameters in `zero_gradients` have an exactly zero true gradient (a bias followed by
    batchnorm): their row holds the largest absolute difference instead. `numeric_of` takes
    the numeric gradient instead of numerical_gradient_off_kinks here: the stand-in of a
    student's model (cvlab.impl.remote) has it taken, the same way, in the worker that runs
    their code.
    """
    loss, grads = model.loss(X, y)
    rows = []
    for name in sorted(grads):
        def f(_: np.ndarray) -> float:
            return float(model.loss(X, y)[0])

        if numeric_of is not None:
            numeric, kinked = numeric_of(model, name, X, y)
        else:
            numeric, kinked = numerical_gradient_off_kinks(f, model.params[name])
        if name in zero_gradients:
            rows.append(compare_gradients(f"{prefix}d{name} (zero)", grads[name], numeric,
                                          zero_gradient_tolerance(loss), "abs", kinked))
        else:
            rows.append(compare_gradients(f"{prefix}d{name}", grads[name], numeric,
                                          tolerance_of(name), "norm", kinked))
    return rows


@register("fc_net")
def check_fc_net(rng: np.random.RandomState, net: Callable[..., Any] | None = None,
                 numeric_of: NumericGradient | None = None) -> list[CheckRow]:
    """FullyConnectedNet [10, 12] on 15 features, for every normalization, plain and with
    (seeded) dropout and reg 3.14. `net`: the class checked (default cvlab's; `cvlab
    gradcheck impl=` passes a stand-in of a student's, and its numeric gradient), called with
    the course's arguments and `rng`, the RandomState its weights come from."""
    return fc_net_rows(rng, FC_SETTINGS, net, numeric_of)


def fc_net_rows(rng: np.random.RandomState, settings: list[tuple[str, float, float]],
                net: Callable[..., Any] | None = None,
                numeric_of: NumericGradient | None = None) -> list[CheckRow]:
    """The fc_net check's rows for the given (normalization, keep ratio, reg) settings."""
    if net is None:
        from cvlab.models.fc_net import FullyConnectedNet as net

    D, H1, H2, C = 15, 10, 12, 10
    rows: list[CheckRow] = []
    for normalization, keep_ratio, reg in settings:
        # Batchnorm needs a few samples for meaningful statistics.
        n = 2 if normalization == "none" else 4
        X = rng.randn(n, D)
        y = rng.randint(C, size=(n,))
        model = net(
            [H1, H2], input_dim=D, num_classes=C, dropout_keep_ratio=keep_ratio,
            normalization=normalization, reg=reg, weight_scale=FC_WEIGHT_SCALE,
            dtype=np.float64, seed=123, rng=rng,
        )
        _draw_constant_parameters(model, rng)
        prefix = f"{normalization},keep={keep_ratio:g},reg={reg:g}: "
        # Batchnorm removes a per-unit shift: the biases before it have zero gradient.
        zero = ("b1", "b2") if normalization == "batchnorm" else ()
        rows += model_rows(model, X, y, prefix, zero_gradients=zero, numeric_of=numeric_of)
    return rows


@register("cnn")
def check_cnn(rng: np.random.RandomState, net: Callable[..., Any] | None = None,
              numeric_of: NumericGradient | None = None) -> list[CheckRow]:
    """ThreeLayerConvNet (3 filters 3x3, hidden 7) on 2 inputs (3, 16, 16), reg 0 and 0.1.

    Weights: conv outputs ~N(0, 4) (a step moves them by ~1e-5 of their spread), hidden
    activations and scores of order 1. reg 0.1: its term as large as the data term (at 0.5 it
    was 4x larger, and its rounding the largest error of db1). `net`: the class checked, as
    in check_fc_net.
    """
    return cnn_rows(rng, (0.0, 0.1), net, numeric_of)


def cnn_rows(rng: np.random.RandomState, regs: tuple[float, ...],
             net: Callable[..., Any] | None = None,
             numeric_of: NumericGradient | None = None) -> list[CheckRow]:
    """The cnn check's rows for the given regularization strengths."""
    if net is None:
        from cvlab.models.cnn import ThreeLayerConvNet as net

    num_inputs, input_dim, num_classes = 2, (3, 16, 16), 10
    rows: list[CheckRow] = []
    for reg in regs:
        X = rng.randn(num_inputs, *input_dim)
        y = rng.randint(num_classes, size=num_inputs)
        model = net(num_filters=3, filter_size=3, input_dim=input_dim, hidden_dim=7, reg=reg,
                    dtype=np.float64, rng=rng)
        pooled = model.params["W2"].shape[0]
        # conv outputs ~N(0, 4); the pooled features (maxima of 4 relus) have mean square ~8
        scales = {"W1": 2 / np.sqrt(27), "W2": 1 / np.sqrt(8 * pooled), "W3": 1 / np.sqrt(7 / 2)}
        for name, scale in scales.items():
            model.params[name] = scale * rng.randn(*model.params[name].shape)
        _draw_constant_parameters(model, rng)
        rows += model_rows(model, X, y, f"reg={reg:g}: ", numeric_of=numeric_of)
    return rows
