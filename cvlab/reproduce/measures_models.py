"""Measures of the models and update rules, computed in process at the notebooks' seeds.

- FullyConnectedNet's initial loss and gradient check (FullyConnectedNets, BatchNormalization
  and Dropout notebooks): np.random.seed(231), X = randn(2, 15), y = randint(10, size=2), then
  one model per value of the cell's loop ([0, 3.14] for reg, [1, 0.75, 0.5] for the keep
  ratio), hidden [20, 30], weight_scale 5e-2, float64; a model later in the loop draws its
  weights after the earlier ones, so they are built too.
- ThreeLayerConvNet's initial loss and gradient check (ConvolutionalNetworks).
- The update rules' one-step checks on linspace inputs (FullyConnectedNets).
- CaptioningRNN's loss on the notebook's fixed parameters and its gradient check
  (RNN_Captioning_pytorch).

Gradient errors are the course's relative error max |a - n| / max(1e-8, |a| + |n|) between
cvlab's gradients and centered differences of the loss (eval_numerical_gradient). The course's
classes and update rules come from `course_api()` (cvlab's, or a student's under `cvlab
reproduce impl=`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cvlab.gradcheck import eval_numerical_gradient, rel_error
from cvlab.reproduce.measures import MeasureContext, Measured, course_api, measure

SEED = 231
FC_REGS = (0.0, 3.14)  # the reg loop of the FC checks (FullyConnectedNets, BatchNormalization)
FC_KEEPS = (1.0, 0.75, 0.5)  # the keep-ratio loop of the Dropout notebook's check
FC_SIZES = (2, 15, 20, 30, 10)  # N, D, H1, H2, C
DROPOUT_MASK_SEED = 123


def fc_notebook_model(normalization: str | None = None, reg: float | None = None,
                      keep: float | None = None) -> tuple[Any, np.ndarray, np.ndarray]:
    """(model, X (N, D), y (N,)) as the check cell builds them: the reg loop when `keep` is
    None, else the keep-ratio loop (reg 0, dropout masks seeded with 123).

    The course's dropout_forward seeds numpy's global RNG with the mask seed (each dropout
    layer, each call); cvlab's leaves it alone. So after the cell has checked a model with
    dropout, numpy's RNG is where seed 123 and the last layer's mask (rand(N, H2)) left it,
    and the next model's weights come from there: that is put in place before it is built.
    """
    FullyConnectedNet = course_api().FullyConnectedNet
    N, D, H1, H2, C = FC_SIZES
    np.random.seed(SEED)
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))
    loop = [(r, 1.0) for r in FC_REGS] if keep is None else [(0.0, k) for k in FC_KEEPS]
    wanted = (float(reg or 0.0), 1.0) if keep is None else (0.0, float(keep))
    if wanted not in loop:
        raise ValueError(f"reg {reg} / keep {keep} is not in the notebook's loop {loop}")
    previous_keep = 1.0
    for setting in loop:
        if previous_keep != 1.0:
            np.random.seed(DROPOUT_MASK_SEED)
            np.random.rand(N, H2)
        model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=setting[0],
                                  weight_scale=5e-2, dtype=np.float64,
                                  normalization=normalization, dropout_keep_ratio=setting[1],
                                  seed=None if keep is None else DROPOUT_MASK_SEED)
        if setting == wanted:
            return model, X, y
        previous_keep = setting[1]
    raise AssertionError("unreachable")


def _errors_text(errors: dict[str, float]) -> str:
    return ", ".join(f"{name} {error:.2e}" for name, error in errors.items())


def _describe(normalization: str | None, reg: float | None, keep: float | None) -> str:
    setting = f"keep {keep}" if keep is not None else f"reg {reg or 0}"
    return f"FullyConnectedNet [20, 30], {normalization or 'no'} normalization, {setting}"


@measure("fc_net_initial_loss")
def fc_net_initial_loss(context: MeasureContext, normalization: str | None = None,
                        reg: float | None = None, keep: float | None = None) -> Measured:
    """The initial loss the FC check cell prints for one reg (or keep ratio). A float."""
    model, X, y = fc_notebook_model(normalization, reg, keep)
    loss, _ = model.loss(X, y)
    return Measured(float(loss), detail=_describe(normalization, reg, keep))


@measure("fc_net_gradient_errors")
def fc_net_gradient_errors(context: MeasureContext, params: list[str],
                           normalization: str | None = None, reg: float | None = None,
                           keep: float | None = None) -> Measured:
    """The relative errors the FC check cell prints for the parameters `params` (e.g. W1, W2,
    W3), numeric gradients at h = 1e-5. {name: error}."""
    model, X, y = fc_notebook_model(normalization, reg, keep)
    errors = model_errors(model, X, y, params, h=1e-5)
    return Measured(errors, detail=f"{_describe(normalization, reg, keep)}: "
                                   f"{_errors_text(errors)}")


def model_errors(model: Any, X: np.ndarray, y: np.ndarray, params: list[str],
                 h: float) -> dict[str, float]:
    """{name: rel_error(numeric, analytic)} of the loss's gradient for each parameter named."""
    _, grads = model.loss(X, y)
    errors = {}
    for name in params:
        numeric = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name],
                                          verbose=False, h=h)
        errors[name] = float(rel_error(numeric, grads[name]))
    return errors


# --- ThreeLayerConvNet ------------------------------------------------------------------------

# The draws of the cell before the initial-loss cell (conv_relu's gradient check, seeded 231):
# x (2, 3, 8, 8), w (3, 3, 3, 3), b (3,), dout (2, 3, 8, 8).
CONV_RELU_DRAWS = ((2, 3, 8, 8), (3, 3, 3, 3), (3,), (2, 3, 8, 8))
CNN_REGS = (0.0, 0.5)


@measure("cnn_initial_loss")
def cnn_initial_loss(context: MeasureContext, reg: float) -> Measured:
    """ThreeLayerConvNet()'s initial loss (float32, weight_scale 1e-3) on X = randn(50, 3, 32,
    32), y = randint(10, size=50), at reg 0 and then (model.reg = 0.5) with regularization.

    That cell sets no seed: numpy's RNG is where the cell before it left it when the notebook
    runs top to bottom (seed 231, then CONV_RELU_DRAWS), and it is put there first."""
    ThreeLayerConvNet = course_api().ThreeLayerConvNet
    if reg not in CNN_REGS:
        raise ValueError(f"reg {reg} is not one of the notebook's {CNN_REGS}")
    np.random.seed(SEED)
    for shape in CONV_RELU_DRAWS:
        np.random.randn(*shape)
    model = ThreeLayerConvNet()
    X = np.random.randn(50, 3, 32, 32)
    y = np.random.randint(10, size=50)
    model.reg = reg
    loss, _ = model.loss(X, y)
    return Measured(float(loss), detail=f"ThreeLayerConvNet(), float32, reg {reg}")


@measure("cnn_gradient_errors")
def cnn_gradient_errors(context: MeasureContext) -> Measured:
    """The gradient check of ThreeLayerConvNet(num_filters=3, filter_size=3, input (3, 16, 16),
    hidden_dim=7, float64) on 2 inputs at seed 231, numeric gradients at h = 1e-6.
    {parameter: error}."""
    ThreeLayerConvNet = course_api().ThreeLayerConvNet
    np.random.seed(SEED)
    input_dim = (3, 16, 16)
    X = np.random.randn(2, *input_dim)
    y = np.random.randint(10, size=2)
    model = ThreeLayerConvNet(num_filters=3, filter_size=3, input_dim=input_dim, hidden_dim=7,
                              dtype=np.float64)
    params = sorted(model.params)
    errors = model_errors(model, X, y, params, h=1e-6)
    return Measured(errors, detail="ThreeLayerConvNet: " + _errors_text(errors))


# --- update rules -----------------------------------------------------------------------------


def _update_inputs(rule_name: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """w, dw (4, 5) and the config of the notebook's check of `rule_name`."""
    def grid(low: float, high: float) -> np.ndarray:
        return np.linspace(low, high, num=20).reshape(4, 5)

    w, dw = grid(-0.4, 0.6), grid(-0.6, 0.4)
    configs = {
        "sgd_momentum": {"learning_rate": 1e-3, "velocity": grid(0.6, 0.9)},
        "rmsprop": {"learning_rate": 1e-2, "cache": grid(0.6, 0.9)},
        "adam": {"learning_rate": 1e-2, "m": grid(0.6, 0.9), "v": grid(0.7, 0.5), "t": 5},
    }
    if rule_name not in configs:
        raise ValueError(f"unknown update rule {rule_name!r}; valid: {', '.join(configs)}")
    return w, dw, configs[rule_name]


@measure("update_rule_step")
def update_rule_step(context: MeasureContext, rule: str, output: str) -> Measured:
    """One step of an update rule on the notebook's linspace inputs: `output` next_w or a state
    array of the config (velocity, cache, m, v), flattened (4 x 5 = 20 floats)."""
    w, dw, config = _update_inputs(rule)
    next_w, config = getattr(course_api(), rule)(w, dw, config)
    value = next_w if output == "next_w" else config[output]
    return Measured([float(v) for v in np.ravel(value)], detail=f"{rule}: {output}")


# --- CaptioningRNN ----------------------------------------------------------------------------

TINY_VOCAB = {"<NULL>": 0, "cat": 2, "dog": 3}


@measure("captioning_small_loss")
def captioning_small_loss(context: MeasureContext) -> Measured:
    """CaptioningRNN('rnn', float64; N, D, W, H = 10, 20, 30, 40, T = 13) with every parameter
    set to linspace(-1.4, 1.3), features linspace(-1.5, 0.3), captions arange % V. A float."""
    import torch

    CaptioningRNN = course_api().CaptioningRNN
    N, D, W, H, T = 10, 20, 30, 40, 13
    model = CaptioningRNN(TINY_VOCAB, input_dim=D, wordvec_dim=W, hidden_dim=H,
                          cell_type="rnn", dtype=torch.float64)
    for name, value in model.params.items():
        model.params[name] = torch.from_numpy(
            np.linspace(-1.4, 1.3, num=value.numel()).reshape(*value.shape))
    features = torch.from_numpy(np.linspace(-1.5, 0.3, num=N * D).reshape(N, D))
    captions = torch.from_numpy((np.arange(N * T) % len(TINY_VOCAB)).reshape(N, T))
    return Measured(float(model.loss(features, captions)), detail="CaptioningRNN small check")


@measure("captioning_gradient_errors")
def captioning_gradient_errors(context: MeasureContext) -> Measured:
    """The gradient check of CaptioningRNN('rnn', float64; batch 2, T = 3, D = 4, W = 5,
    H = 6) at np/torch seed 231: autograd vs numeric gradients at h = 1e-6. {param: error}."""
    import torch

    CaptioningRNN = course_api().CaptioningRNN
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    captions = torch.from_numpy(np.random.randint(len(TINY_VOCAB), size=(2, 3)))
    features = torch.from_numpy(np.random.randn(2, 4))
    model = CaptioningRNN(TINY_VOCAB, input_dim=4, wordvec_dim=5, hidden_dim=6,
                          cell_type="rnn", dtype=torch.float64)
    model.loss(features, captions).backward()
    grads = {name: value.grad.numpy().copy() for name, value in model.params.items()}
    errors = {}
    for name in sorted(grads):
        def loss_at(value: np.ndarray, name: str = name) -> float:
            model.params[name] = torch.from_numpy(value)
            with torch.no_grad():
                return float(model.loss(features, captions))

        start = model.params[name].detach().numpy().copy()
        numeric = eval_numerical_gradient(loss_at, start, verbose=False, h=1e-6)
        errors[name] = float(rel_error(numeric, grads[name]))
    return Measured(errors, detail="CaptioningRNN: " + _errors_text(errors))
