"""The forward passes of a student's functions, compared with cvlab's on the same inputs.

Each check name (cvlab gradcheck's layer=) has a few cases: the notebook's own inputs where it
has them (linspace grids), the shapes of cvlab's gradient checks and one more shape that is
not square (so that N, D, C, H and W mixed up show). A case calls the student's function and
cvlab's (cvlab.layers, cvlab.train.optim, cvlab.layers.rnn) on copies of the same arguments,
numpy's global RNG put back between the two, and compares:
- every output (out; a loss and its dx; next_w and the update rule's config);
- the dicts the course's API writes into: batchnorm's running statistics in bn_param;
- side effects the API rules out: an input array the forward wrote into, numpy's global RNG
  moved by dropout with a seed;
- with a backward named: its gradients' shapes (as cvlab's), a second backward on the same
  cache giving the same gradients (a backward that writes into its cache does not), and dout
  left as it was.
Arrays are compared by the norm error (cvlab.checks.compare_gradients) with FORWARD_TOLERANCE;
a failing row names the index of the largest difference. `numeric_case_rows` checks a case's
backward at its own inputs (other shapes than the course's) with the rows of cvlab's layer
checks (cvlab.checks.layers.numeric_rows: the error model, the norm error, kinks left out).

Shapes: N samples, D features, C channels, H x W images, F filters, T time steps, V words.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cvlab.checks import ANALYTIC_TOLERANCE, CheckRow, compare_gradients
from cvlab.impl.course import COURSE
from cvlab.vocab import NUMPY_RULES

# Two float64 computations of the same forward pass differ by rounding (other formulas, other
# summation orders: ~1e-16..1e-14 in norm); a wrong one moves the output by 1e-3 or more.
FORWARD_TOLERANCE = 1e-9
SIDE_EFFECT = "side effect"


@dataclass
class Case:
    """One call compared with cvlab's: `function` on `args`; `backward` probed with a random
    dout; `seeded`: numpy's global RNG must be left alone; `statistics`: a random mask, judged
    by what any correct one gives (dropout without a seed); `label` says which inputs."""

    function: str
    args: tuple
    label: str
    backward: str | None = None
    seeded: bool = False
    statistics: bool = False  # dropout without a seed: judged by its statistics, not cvlab's


def grid(low: float, high: float, *shape: int) -> np.ndarray:
    """np.linspace(low, high) over prod(shape) entries, reshaped: the notebooks' inputs."""
    return np.linspace(low, high, num=int(np.prod(shape))).reshape(shape)


# --- the cases of each check --------------------------------------------------------------


def _affine(rng: np.random.RandomState) -> list[Case]:
    notebook = (grid(-0.1, 0.5, 2, 4, 5, 6), grid(-0.2, 0.3, 120, 3), grid(-0.3, 0.1, 3))
    return [Case("affine_forward", notebook, "the notebook's inputs", "affine_backward"),
            Case("affine_forward", (rng.randn(10, 2, 3), rng.randn(6, 5), rng.randn(5)),
                 "x (10, 2, 3), w (6, 5)", "affine_backward")]


def _relu(rng: np.random.RandomState) -> list[Case]:
    return [Case("relu_forward", (grid(-0.5, 0.5, 3, 4),), "the notebook's inputs",
                 "relu_backward"),
            Case("relu_forward", (rng.randn(7, 3),), "x (7, 3)", "relu_backward")]


def _loss(name: str) -> Callable[[np.random.RandomState], list[Case]]:
    def cases(rng: np.random.RandomState) -> list[Case]:
        return [Case(name, (0.001 * rng.randn(50, 10), rng.randint(10, size=50)),
                     "x 0.001 randn (50, 10)"),
                Case(name, (3 * rng.randn(7, 4), rng.randint(4, size=7)), "x 3 randn (7, 4)")]
    return cases


def _batchnorm(rng: np.random.RandomState) -> list[Case]:
    warm = {"mode": "train", "momentum": 0.5, "eps": 1e-3, "running_mean": rng.randn(3),
            "running_var": rng.rand(3) + 0.5}
    test = {"mode": "test", "running_mean": rng.randn(3), "running_var": rng.rand(3) + 0.5}
    return [Case("batchnorm_forward", (5 * rng.randn(4, 5) + 12, rng.randn(5), rng.randn(5),
                                       {"mode": "train"}),
                 "train, x (4, 5), first call", "batchnorm_backward"),
            Case("batchnorm_forward", (rng.randn(7, 3), rng.randn(3), rng.randn(3), warm),
                 "train, x (7, 3), momentum 0.5, eps 1e-3, running statistics set"),
            Case("batchnorm_forward", (rng.randn(7, 3), rng.randn(3), rng.randn(3), test),
                 "test, x (7, 3)")]


def _batchnorm_alt(rng: np.random.RandomState) -> list[Case]:
    case = _batchnorm(rng)[0]
    case.backward = "batchnorm_backward_alt"
    return [case]


def _layernorm(rng: np.random.RandomState) -> list[Case]:
    return [Case("layernorm_forward", (5 * rng.randn(4, 5) + 12, rng.randn(5), rng.randn(5),
                                       {}), "x (4, 5)", "layernorm_backward"),
            Case("layernorm_forward", (rng.randn(7, 3), rng.randn(3), rng.randn(3),
                                       {"eps": 1e-3}), "x (7, 3), eps 1e-3")]


def _dropout(rng: np.random.RandomState) -> list[Case]:
    x = rng.randn(10, 10) + 10
    return [Case("dropout_forward", (x, {"mode": "train", "p": 0.3, "seed": 123}),
                 "train, keep 0.3, seed 123", "dropout_backward", seeded=True),
            Case("dropout_forward", (rng.rand(200, 500) + 1, {"mode": "train", "p": 0.6}),
                 "train, keep 0.6, no seed", statistics=True),
            Case("dropout_forward", (x, {"mode": "test", "p": 0.3}), "test")]


def _conv(function: str, backward: str) -> Callable[[np.random.RandomState], list[Case]]:
    def cases(rng: np.random.RandomState) -> list[Case]:
        notebook = (grid(-0.1, 0.5, 2, 3, 4, 4), grid(-0.2, 0.3, 3, 3, 4, 4), grid(-0.1, 0.2, 3),
                    {"stride": 2, "pad": 1})
        return [Case(function, notebook, "the notebook's inputs", backward),
                Case(function, (rng.randn(4, 3, 5, 5), rng.randn(2, 3, 3, 3), rng.randn(2),
                                {"stride": 1, "pad": 1}), "x (4, 3, 5, 5), w (2, 3, 3, 3)",
                     backward),
                Case(function, (rng.randn(2, 3, 7, 6), rng.randn(4, 3, 3, 2), rng.randn(4),
                                {"stride": 1, "pad": 0}), "x (2, 3, 7, 6), w (4, 3, 3, 2)",
                     backward)]
    return cases


def _pool(function: str, backward: str) -> Callable[[np.random.RandomState], list[Case]]:
    def cases(rng: np.random.RandomState) -> list[Case]:
        two = {"pool_height": 2, "pool_width": 2, "stride": 2}
        return [Case(function, (grid(-0.3, 0.4, 2, 3, 4, 4), two), "the notebook's inputs",
                     backward),
                Case(function, (rng.randn(3, 2, 8, 8), two), "x (3, 2, 8, 8)", backward),
                Case(function, (rng.randn(2, 3, 7, 9),
                                {"pool_height": 3, "pool_width": 3, "stride": 2}),
                     "x (2, 3, 7, 9), 3x3 windows, stride 2", backward)]
    return cases


def _spatial_batchnorm(rng: np.random.RandomState) -> list[Case]:
    test = {"mode": "test", "running_mean": rng.randn(4), "running_var": rng.rand(4) + 0.5}
    return [Case("spatial_batchnorm_forward", (4 * rng.randn(2, 3, 4, 5) + 10, rng.randn(3),
                                               rng.randn(3), {"mode": "train"}),
                 "train, x (2, 3, 4, 5)", "spatial_batchnorm_backward"),
            Case("spatial_batchnorm_forward", (rng.randn(3, 4, 5, 6), rng.randn(4),
                                               rng.randn(4), test), "test, x (3, 4, 5, 6)")]


def _spatial_groupnorm(rng: np.random.RandomState) -> list[Case]:
    return [Case("spatial_groupnorm_forward", (4 * rng.randn(2, 6, 4, 5) + 10,
                                               rng.randn(1, 6, 1, 1), rng.randn(1, 6, 1, 1), 2,
                                               {}), "x (2, 6, 4, 5), G 2",
                 "spatial_groupnorm_backward"),
            Case("spatial_groupnorm_forward", (rng.randn(3, 4, 2, 3), rng.randn(1, 4, 1, 1),
                                               rng.randn(1, 4, 1, 1), 4, {}),
                 "x (3, 4, 2, 3), G 4")]


def _sandwiches(rng: np.random.RandomState, unit: str) -> list[Case]:
    x, w, b = rng.randn(2, 3, 8, 8), rng.randn(3, 3, 3, 3), rng.randn(3)
    conv = {"stride": 1, "pad": 1}
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    cases = {
        "affine_relu": Case("affine_relu_forward", (rng.randn(2, 3, 4), rng.randn(12, 10),
                                                    rng.randn(10)), "x (2, 3, 4)",
                            "affine_relu_backward"),
        "conv_relu": Case("conv_relu_forward", (x, w, b, conv), "x (2, 3, 8, 8)",
                          "conv_relu_backward"),
        "conv_relu_pool": Case("conv_relu_pool_forward", (x, w, b, conv, pool),
                               "x (2, 3, 8, 8)", "conv_relu_pool_backward"),
        "conv_bn_relu": Case("conv_bn_relu_forward", (x, w, b, 1 + 0.2 * rng.randn(3),
                                                      0.5 * rng.randn(3), conv,
                                                      {"mode": "train"}),
                             "train, x (2, 3, 8, 8)", "conv_bn_relu_backward"),
    }
    return [cases[unit]]


def _update_rule(rule: str) -> Callable[[np.random.RandomState], list[Case]]:
    def cases(rng: np.random.RandomState) -> list[Case]:
        w, dw = grid(-0.4, 0.6, 4, 5), grid(-0.6, 0.4, 4, 5)
        configs = {"sgd": {"learning_rate": 1e-3},
                   "sgd_momentum": {"learning_rate": 1e-3, "velocity": grid(0.6, 0.9, 4, 5)},
                   "rmsprop": {"learning_rate": 1e-2, "cache": grid(0.6, 0.9, 4, 5)},
                   "adam": {"learning_rate": 1e-2, "m": grid(0.6, 0.9, 4, 5),
                            "v": grid(0.7, 0.5, 4, 5), "t": 5}}
        return [Case(rule, (w, dw, configs[rule]), "the notebook's inputs"),
                Case(rule, (rng.randn(3, 2), rng.randn(3, 2), None), "config=None: defaults")]
    return cases


def _recurrent(rng: np.random.RandomState, unit: str) -> list[Case]:
    import torch

    t = torch.from_numpy
    N, T, D, H, V = 2, 3, 4, 5, 6
    inputs = {
        "rnn_step": ("rnn_step_forward", (t(grid(-0.4, 0.7, 3, 10)), t(grid(-0.2, 0.5, 3, 4)),
                                          t(grid(-0.1, 0.9, 10, 4)), t(grid(-0.3, 0.7, 4, 4)),
                                          t(grid(-0.2, 0.4, 4)))),
        "rnn": ("rnn_forward", (t(grid(-0.1, 0.3, N, T, D)), t(grid(-0.3, 0.1, N, H)),
                                t(grid(-0.2, 0.4, D, H)), t(grid(-0.4, 0.1, H, H)),
                                t(grid(-0.7, 0.1, H)))),
        "lstm_step": ("lstm_step_forward", (t(rng.randn(N, D)), t(rng.randn(N, H)),
                                            t(rng.randn(N, H)), t(rng.randn(D, 4 * H)),
                                            t(rng.randn(H, 4 * H)), t(rng.randn(4 * H)))),
        "lstm": ("lstm_forward", (t(rng.randn(N, T, D)), t(rng.randn(N, H)),
                                  t(rng.randn(D, 4 * H) / 2), t(rng.randn(H, 4 * H) / 2),
                                  t(rng.randn(4 * H)))),
        "word_embedding": ("word_embedding_forward", (t(np.array([[0, 3, 1, 2], [2, 1, 0, 3]])),
                                                      t(grid(0, 1, 5, 3)))),
        "temporal_affine": ("temporal_affine_forward", (t(rng.randn(N, T, D)),
                                                        t(rng.randn(D, H)), t(rng.randn(H)))),
        "temporal_softmax": ("temporal_softmax_loss", (t(rng.randn(N, T, V)),
                                                       t(rng.randint(V, size=(N, T))),
                                                       t(rng.rand(N, T) > 0.3))),
    }
    function, args = inputs[unit]
    return [Case(function, args, "the notebook's inputs" if unit in ("rnn_step", "rnn",
                                                                      "word_embedding")
                 else "random inputs")]


CASES: dict[str, Callable[[np.random.RandomState], list[Case]]] = {
    "affine": _affine, "relu": _relu, "softmax": _loss("softmax_loss"),
    "svm": _loss("svm_loss"), "batchnorm": _batchnorm, "batchnorm_alt": _batchnorm_alt,
    "layernorm": _layernorm, "dropout": _dropout,
    "conv": _conv("conv_forward_naive", "conv_backward_naive"),
    "conv_fast": _conv("conv_forward_fast", "conv_backward_fast"),
    "maxpool": _pool("max_pool_forward_naive", "max_pool_backward_naive"),
    "maxpool_fast": _pool("max_pool_forward_fast", "max_pool_backward_fast"),
    "spatial_batchnorm": _spatial_batchnorm, "spatial_groupnorm": _spatial_groupnorm,
    **{unit: (lambda rng, unit=unit: _sandwiches(rng, unit))
       for unit in ("affine_relu", "conv_relu", "conv_relu_pool", "conv_bn_relu")},
    **{rule: _update_rule(rule) for rule in NUMPY_RULES},
    **{unit: (lambda rng, unit=unit: _recurrent(rng, unit))
       for unit in ("rnn_step", "rnn", "lstm_step", "lstm", "word_embedding", "temporal_affine",
                    "temporal_softmax")},
}


# --- comparing ----------------------------------------------------------------------------


def as_array(value: Any) -> np.ndarray:
    """An output as a float64 array (torch tensors detached)."""
    if hasattr(value, "detach"):
        value = value.detach().numpy()
    return np.asarray(value, dtype=np.float64)


def compare_arrays(what: str, yours: Any, cvlabs: Any) -> CheckRow:
    """The row comparing an output with cvlab's: norm error, bound FORWARD_TOLERANCE; a
    failing row names the index of the largest difference and both values there."""
    try:
        mine = as_array(yours)
    except (TypeError, ValueError):
        return CheckRow(f"{what}: a {type(yours).__name__}, not an array", np.inf,
                        FORWARD_TOLERANCE, "norm")
    ref = as_array(cvlabs)
    if mine.shape != ref.shape:
        return CheckRow(f"{what}: shape {mine.shape}, cvlab's {ref.shape}", np.inf,
                        FORWARD_TOLERANCE, "norm")
    row = compare_gradients(what, mine, ref, FORWARD_TOLERANCE)
    if row.passed or not mine.size:
        return row
    diff = np.abs(mine - ref)
    diff[~np.isfinite(diff)] = np.inf
    at = np.unravel_index(int(np.argmax(diff)), diff.shape)
    where = tuple(int(i) for i in at)
    return CheckRow(f"{what}: largest difference at {where if where else 'the value'}: yours "
                    f"{mine[at]:.6g}, cvlab's {ref[at]:.6g}", row.error, row.tolerance,
                    row.metric, row.rel_error)


def side_effect_row(what: str, held: bool, size: float = 1.0) -> CheckRow:
    """A row that holds or not: error 0 when it holds, else `size` (> 0), bound 0."""
    return CheckRow(what, 0.0 if held else max(float(size), np.finfo(float).tiny), 0.0,
                    SIDE_EFFECT)


def named_outputs(case: Case, result: Any) -> dict[str, Any]:
    """The outputs of a call by name: out (a forward pass), loss and dx (a loss), next_w and
    config[...] (an update rule), or the outputs of a recurrent function."""
    returns = COURSE[case.function].returns
    if returns == "cache":
        return {"out": result[0]}
    if case.function.endswith("_loss") and returns == 2:
        return {"loss": result[0], "dx": result[1]}
    if case.function in NUMPY_RULES:
        next_w, config = result
        return {"next_w": next_w, **{f"config[{k!r}]": v for k, v in (config or {}).items()}}
    values = result if isinstance(result, tuple) else (result,)
    return {("out" if len(values) == 1 else f"out[{i}]"): v for i, v in enumerate(values)}


def _call_both(case: Case, yours: Any, cvlabs: Any) -> tuple[Any, Any, list[Any], list[Any],
                                                              bool]:
    """Both functions on copies of the arguments, numpy's RNG put back in between: results,
    the arguments as each call left them, and whether the user's call moved the RNG."""
    state = np.random.get_state()
    mine_args, ref_args = copy.deepcopy(list(case.args)), copy.deepcopy(list(case.args))
    mine = getattr(yours, case.function)(*mine_args)
    moved = not _same_state(state, np.random.get_state())
    np.random.set_state(state)
    ref = getattr(cvlabs, case.function)(*ref_args)
    return mine, ref, mine_args, ref_args, moved


def _same_state(a: tuple, b: tuple) -> bool:
    return a[2:] == b[2:] and np.array_equal(a[1], b[1])


def dropout_statistics(case: Case, yours: Any) -> list[CheckRow]:
    """Dropout without a seed: about 1 - p of the units zeroed (within 0.01: 17 standard
    deviations for 100,000 units at p = 0.6), the others scaled by 1 / p."""
    x, param = case.args
    out = as_array(getattr(yours, case.function)(x.copy(), dict(param))[0])
    prefix = f"{case.function} ({case.label}): "
    if out.shape != x.shape:
        return [compare_arrays(prefix + "out", out, x)]
    dropped, keep = float(np.mean(out == 0)), param["p"]
    kept = out != 0
    return [CheckRow(f"{prefix}fraction of units dropped {dropped:.4f}, 1 - p = {1 - keep:g}",
                     abs(dropped - (1 - keep)), 0.01, "abs"),
            compare_gradients(f"{prefix}kept units equal x / p", out[kept], x[kept] / keep,
                              FORWARD_TOLERANCE)]


def case_rows(case: Case, yours: Any, cvlabs: Any, changed: list[dict]) -> list[CheckRow]:
    """The rows of one case: outputs, dicts written, side effects, the backward probe.
    `changed`: the list the user's stand-ins record their writes into input arrays in."""
    if case.statistics:
        return dropout_statistics(case, yours)
    changed.clear()
    mine, ref, mine_args, ref_args, moved = _call_both(case, yours, cvlabs)
    prefix = f"{case.function} ({case.label}): "
    ref_outputs, mine_outputs = named_outputs(case, ref), named_outputs(case, mine)
    rows = [compare_arrays(prefix + name, mine_outputs.get(name), value)
            if name in mine_outputs else side_effect_row(f"{prefix}{name} is not returned",
                                                         False, np.inf)
            for name, value in ref_outputs.items()]
    if COURSE[case.function].returns == "cache":
        rows += _dict_rows(prefix, mine_args, ref_args)
    rows += [side_effect_row(f"{prefix}wrote into its input {c['arg']} (largest change "
                             f"{c['max']:.3g} at {tuple(c['at'])})", False, c["max"])
             for c in changed if c["function"] == case.function]
    if case.seeded:
        rows.append(side_effect_row(
            f"{prefix}numpy's global RNG left alone" if not moved else
            f"{prefix}moved numpy's global RNG: with a seed, draw the mask from "
            "np.random.RandomState(seed) instead of np.random.seed(seed)", not moved))
    if case.backward is not None:
        rows += _backward_rows(case, prefix, mine, ref, yours, cvlabs, changed)
    return rows


def _dict_rows(prefix: str, mine_args: list[Any], ref_args: list[Any]) -> list[CheckRow]:
    """What the call wrote into its dict arguments (bn_param's running statistics) against
    what cvlab's wrote."""
    rows = []
    for mine, ref in zip(mine_args, ref_args):
        if not isinstance(ref, dict) or not isinstance(mine, dict):
            continue
        for key, value in ref.items():
            if not isinstance(value, np.ndarray):
                continue
            what = f"{prefix}{key} in the param dict after the call"
            rows.append(compare_arrays(what, mine[key], value) if key in mine
                        else side_effect_row(f"{what}: not set", False, np.inf))
    return rows


def _backward_rows(case: Case, prefix: str, mine: Any, ref: Any, yours: Any, cvlabs: Any,
                   changed: list[dict]) -> list[CheckRow]:
    """The backward on the user's cache: gradient shapes as cvlab's, the same gradients from
    a second call on the same cache, dout left alone."""
    out = as_array(mine[0])
    dout = np.random.RandomState(0).randn(*out.shape)
    changed.clear()
    first = _as_tuple(getattr(yours, case.backward)(dout.copy(), mine[1]))
    second = _as_tuple(getattr(yours, case.backward)(dout.copy(), mine[1]))
    expected = _as_tuple(getattr(cvlabs, case.backward)(dout.copy(), ref[1]))
    names = [f"d{name}" for name, value in zip(_params(case.function), case.args)
             if isinstance(value, np.ndarray)]
    prefix = f"{case.backward} ({case.label}): "
    rows = [side_effect_row(f"{prefix}returns {len(first)} gradients, cvlab's {len(expected)}",
                            len(first) == len(expected))]
    for name, a, b, c in zip(names, first, second, expected):
        rows.append(side_effect_row(f"{prefix}{name} shaped {np.shape(a)}, cvlab's "
                                    f"{np.shape(c)}", np.shape(a) == np.shape(c)))
        rows.append(compare_gradients(f"{prefix}{name} again on the same cache", as_array(b),
                                      as_array(a), ANALYTIC_TOLERANCE))
    rows += [side_effect_row(f"{prefix}wrote into dout (largest change {c['max']:.3g})", False,
                             c["max"]) for c in changed if c["arg"] == "dout"]
    return rows


def _as_tuple(value: Any) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _params(function: str) -> tuple[str, ...]:
    return COURSE[function].params


# A bias followed by batch normalization has a gradient of exactly zero (judged by
# cvlab.checks.zero_gradient_tolerance, as cvlab's checks judge it).
ZERO_GRADIENTS = {"conv_bn_relu_forward": ("b",)}


def numeric_case_rows(case: Case, yours: Any) -> list[CheckRow]:
    """The user's backward of `case` against centered differences of their forward at the
    case's inputs: one row per array input (norm error, bound NUMERIC_TOLERANCE; entries whose
    step crosses a kink left out), labelled with the case."""
    from cvlab.checks.layers import numeric_rows

    params = _params(case.function)
    names = [name for name, value in zip(params, case.args) if isinstance(value, np.ndarray)]

    def forward(**arrays: np.ndarray) -> np.ndarray:
        args = [arrays.get(name, copy.deepcopy(value)) for name, value in zip(params, case.args)]
        return as_array(getattr(yours, case.function)(*args)[0])

    out, cache = getattr(yours, case.function)(*copy.deepcopy(list(case.args)))
    dout = np.random.RandomState(1).randn(*as_array(out).shape)
    grads = _as_tuple(getattr(yours, case.backward)(dout.copy(), cache))
    analytic = {name: as_array(grad) for name, grad in zip(names, grads)}
    inputs = {name: np.array(value, dtype=np.float64) for name, value in zip(params, case.args)
              if name in analytic}
    rows = numeric_rows(forward, inputs, dout, analytic,
                        zero=ZERO_GRADIENTS.get(case.function, ()), kinks=True)
    return [replace(row, what=f"{row.what} ({case.label})") for row in rows]
