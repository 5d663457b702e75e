"""The verdict on each course function or model of a student's folder (`cvlab gradcheck
impl=<folder>`).

A check (UNITS: the names of cvlab's gradient checks, plus the update rules) judges the course
functions it names, in this order:
- missing: a function (or its file) is not there;
- crashed / timed out / not implemented: what their code did instead of answering (the
  skeleton's placeholders: None, `pass`, NotImplementedError, the unfilled `out = None`);
- wrong forward: an output, a param dict written (running statistics) or a side effect differs
  from cvlab's on the same inputs (cvlab.impl.cases); for the models, the initial losses at the
  course's seeds against the course's printed values (the catalog's items) and the params and
  grads they have;
- wrong backward: a row of cvlab's own gradient check (cvlab.checks: the same inputs, error
  model and bounds) run on their functions fails, at any of several seeds;
- passes.
Every comparison runs in this process on plain arrays the worker sent; their code runs only
in the worker (cvlab.impl.remote).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cvlab.checks import CheckRow, get_check
from cvlab.impl.cases import CASES, SIDE_EFFECT, case_rows, numeric_case_rows
from cvlab.impl.course import COURSE, TORCH_MODULES
from cvlab.impl.remote import Implementation, RemoteModel, reference
from cvlab.impl.worker import ImplFailure
from cvlab.vocab import NUMPY_RULES


@dataclass(frozen=True)
class Unit:
    """One check: the course names it judges, cvlab's gradient check run on them (None: an
    update rule, which has no gradient) and the catalog's measures of the course's values."""

    name: str
    functions: tuple[str, ...]
    check: str | None
    measures: tuple[str, ...] = ()


def _layer(name: str, *functions: str) -> Unit:
    return Unit(name, functions, name)


UNITS: tuple[Unit, ...] = (
    _layer("affine", "affine_forward", "affine_backward"),
    _layer("relu", "relu_forward", "relu_backward"),
    _layer("softmax", "softmax_loss"), _layer("svm", "svm_loss"),
    _layer("batchnorm", "batchnorm_forward", "batchnorm_backward"),
    _layer("batchnorm_alt", "batchnorm_forward", "batchnorm_backward",
           "batchnorm_backward_alt"),
    _layer("layernorm", "layernorm_forward", "layernorm_backward"),
    _layer("dropout", "dropout_forward", "dropout_backward"),
    _layer("conv", "conv_forward_naive", "conv_backward_naive"),
    _layer("conv_fast", "conv_forward_fast", "conv_backward_fast"),
    _layer("maxpool", "max_pool_forward_naive", "max_pool_backward_naive"),
    _layer("maxpool_fast", "max_pool_forward_fast", "max_pool_backward_fast"),
    _layer("spatial_batchnorm", "spatial_batchnorm_forward", "spatial_batchnorm_backward"),
    _layer("spatial_groupnorm", "spatial_groupnorm_forward", "spatial_groupnorm_backward"),
    _layer("affine_relu", "affine_relu_forward", "affine_relu_backward"),
    _layer("conv_relu", "conv_relu_forward", "conv_relu_backward"),
    _layer("conv_relu_pool", "conv_relu_pool_forward", "conv_relu_pool_backward"),
    _layer("conv_bn_relu", "conv_bn_relu_forward", "conv_bn_relu_backward"),
    *(Unit(rule, (rule,), None) for rule in NUMPY_RULES),
    Unit("fc_net", ("FullyConnectedNet",), "fc_net", ("fc_net_initial_loss",)),
    Unit("cnn", ("ThreeLayerConvNet",), "cnn", ("cnn_initial_loss",)),
    _layer("rnn_step", "rnn_step_forward"), _layer("rnn", "rnn_forward"),
    _layer("lstm_step", "lstm_step_forward"), _layer("lstm", "lstm_forward"),
    _layer("word_embedding", "word_embedding_forward"),
    _layer("temporal_affine", "temporal_affine_forward"),
    _layer("temporal_softmax", "temporal_softmax_loss"),
    Unit("captioning_rnn", ("CaptioningRNN",), "captioning_rnn", ("captioning_small_loss",)),
    Unit("captioning_lstm", ("CaptioningRNN",), "captioning_lstm"),
)
UNIT_BY_NAME = {unit.name: unit for unit in UNITS}


@dataclass
class UnitResult:
    """A check's verdict, its one-line detail (which gradient or output, the error and the
    bound; or what their code did), their traceback, the rows it rests on, its seconds."""

    unit: Unit
    files: str
    verdict: str
    detail: str
    trace: str = ""
    rows: list[CheckRow] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def found(self) -> bool:
        return self.verdict != "missing"


def judge(impl: Implementation, unit: Unit, seeds: tuple[int, ...]) -> UnitResult:
    """The verdict on one check's functions, within impl's time limit."""
    start = time.perf_counter()
    files = ", ".join(dict.fromkeys(impl.layout.display(impl.layout.module_of(name))
                                    for name in unit.functions))
    rows: list[CheckRow] = []
    trace = ""
    with impl.limit():
        try:
            verdict, detail, trace = _presence(impl, unit)
            if verdict is None:
                verdict, detail = _judge_rows(impl, unit, seeds, rows)
        except ImplFailure as failure:
            verdict, detail, trace = failure.kind, failure.detail, failure.trace
    if verdict == "timed out":
        detail += f": no answer within timeout_s={impl.timeout_s:g} s"
    return UnitResult(unit, files, verdict, detail, trace, rows, time.perf_counter() - start)


def _presence(impl: Implementation, unit: Unit) -> tuple[str | None, str, str]:
    """(None, "", "") when every function is there; else the verdict of the first that is
    not (missing, or what importing its file did)."""
    for status in impl.find(list(unit.functions)).values():
        if status["status"] != "found":
            return status["status"], status["detail"], status.get("traceback") or ""
    return None, "", ""


def _judge_rows(impl: Implementation, unit: Unit, seeds: tuple[int, ...],
                rows: list[CheckRow]) -> tuple[str, str]:
    """wrong forward, wrong backward or passes, from the rows (appended to `rows`)."""
    try:
        rows += forward_rows(impl, unit, seeds[0])
    except (TypeError, ValueError, IndexError, KeyError) as err:
        return "wrong forward", f"your outputs could not be compared: {_line(err)}"
    forward_failures = [row for row in rows if not row.passed]
    try:
        checked, shapes = backward_rows(impl, unit, seeds) if unit.check else ([], [])
    except ImplFailure as failure:
        if not forward_failures:
            raise
        checked, shapes = [CheckRow(f"backward not judged: {failure.kind}: {failure.detail}",
                                    math.inf, 0.0, "raised")], []
    except (TypeError, ValueError, IndexError, KeyError) as err:
        checked, shapes = [CheckRow(f"gradients could not be compared: {_line(err)}",
                                    math.inf, 0.0, "raised")], []
    rows += checked + shapes
    if forward_failures:
        return "wrong forward", describe(_worst(forward_failures))
    # the rows of cvlab's own check (the course's shapes) are named first
    failures = [row for row in checked if not row.passed] or \
        [row for row in shapes if not row.passed]
    if failures:
        return "wrong backward", describe(_worst(failures))
    worst = _worst(rows) if rows else None
    return "passes", (f"{len(rows)} rows; closest to its bound: {describe(worst)}"
                      if worst is not None else "")


def _line(err: BaseException) -> str:
    return f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"


def ratio(row: CheckRow) -> float:
    """error / bound (a zero bound: inf when the error is not zero)."""
    if row.tolerance > 0:
        return row.error / row.tolerance if not math.isnan(row.error) else math.inf
    return math.inf if row.error > 0 or math.isnan(row.error) else 0.0


def _worst(rows: list[CheckRow]) -> CheckRow:
    return max(rows, key=ratio)


def describe(row: CheckRow) -> str:
    """A row in one line: what, and its error against the bound."""
    if row.metric in (SIDE_EFFECT, "raised", "finite"):
        return row.label
    relation = "<=" if row.passed else ">"
    return f"{row.label}: {row.metric} error {row.error:.2e} {relation} bound {row.tolerance:.0e}"


# --- forward ------------------------------------------------------------------------------


class CvlabNames:
    """cvlab's own objects by the course's names (cvlab.impl.remote.reference)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return reference(name)


def forward_rows(impl: Implementation, unit: Unit, seed: int) -> list[CheckRow]:
    """The forward rows of a check: its cases against cvlab's (layers, update rules,
    recurrent layers) or, for a model, its params and grads against cvlab's model and its
    initial losses against the course's values."""
    rng = np.random.RandomState(seed)
    if unit.name in CASES:
        yours = impl.namespace(list(unit.functions))
        return [row for case in CASES[unit.name](rng)
                for row in case_rows(case, yours, CvlabNames(), impl.changed)]
    rows = model_rows(impl, unit.functions[0], rng)
    return rows + catalog_rows(impl, unit.measures)


MODEL_CONFIGS: dict[str, list[tuple[tuple, dict[str, Any], tuple[int, ...]]]] = {
    # (positional args, keyword args, the input's shape)
    "FullyConnectedNet": [(([10, 12],), {"input_dim": 15, "num_classes": 10,
                                        "normalization": normalization,
                                        "dropout_keep_ratio": 0.5, "reg": 0.1,
                                        "dtype": np.float64, "seed": 1}, (4, 15))
                          for normalization in (None, "batchnorm", "layernorm")],
    "ThreeLayerConvNet": [((), {"input_dim": (3, 8, 8), "num_filters": 2, "filter_size": 3,
                                "hidden_dim": 5, "dtype": np.float64}, (2, 3, 8, 8))],
}


def model_rows(impl: Implementation, name: str, rng: np.random.RandomState) -> list[CheckRow]:
    """The user's model against cvlab's of the same arguments: the same params (names and
    shapes), a gradient for each, the scores' shape."""
    rows = []
    for args, kwargs, shape in MODEL_CONFIGS.get(name, []):
        ref = reference(name)(*args, **kwargs)
        mine = RemoteModel(impl, name, args, kwargs)
        label = f"{name}({', '.join(map(repr, args))}, {_short(kwargs)})"
        rows.append(_same_keys(f"{label}.params", mine.params, ref.params))
        X, y = rng.randn(*shape), rng.randint(10, size=shape[0])
        _, grads = mine.loss(X, y)
        rows.append(_same_keys(f"{label}.loss(X, y) grads", grads, ref.params))
        scores = np.asarray(mine.loss(X))
        rows.append(_shape_row(f"{label}.loss(X) scores", scores.shape,
                               np.asarray(ref.loss(X)).shape))
    return rows


def _short(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={getattr(v, '__name__', v)!r}" if isinstance(v, type) else f"{k}={v!r}"
                     for k, v in kwargs.items())


def _same_keys(what: str, mine: dict[str, Any], ref: dict[str, Any]) -> CheckRow:
    """Same names and shapes as cvlab's (the first difference named)."""
    for key in ref:
        if key not in mine:
            return CheckRow(f"{what}: no {key!r} (cvlab's has {', '.join(ref)})", math.inf,
                            0.0, SIDE_EFFECT)
        if np.shape(mine[key]) != np.shape(ref[key]):
            return CheckRow(f"{what}: {key} shaped {np.shape(mine[key])}, cvlab's "
                            f"{np.shape(ref[key])}", math.inf, 0.0, SIDE_EFFECT)
    extra = [key for key in mine if key not in ref]
    return CheckRow(f"{what}: {', '.join(ref)}" + (f" (and {', '.join(extra)})" if extra
                                                   else ""), 0.0, 0.0, SIDE_EFFECT)


def _shape_row(what: str, mine: tuple, ref: tuple) -> CheckRow:
    return CheckRow(f"{what} shaped {mine}, cvlab's {ref}", 0.0 if mine == ref else math.inf,
                    0.0, SIDE_EFFECT)


def catalog_rows(impl: Implementation, measures: tuple[str, ...]) -> list[CheckRow]:
    """The catalog's items of `measures` (initial losses at the course's seeds) measured on the
    user's model and compared with the course's printed values by the item's rule."""
    from cvlab.reproduce.catalog import MeasureContext, load_catalog
    from cvlab.reproduce.measures import get_measure, using
    from cvlab.reproduce.rules import entries
    from cvlab.reproduce.rules import judge as judge_rule

    rows = []
    context = MeasureContext(implementation=impl)
    for item in load_catalog().items:
        if item.measure["name"] not in measures:
            continue
        with using(impl):
            measured = get_measure(item.measure["name"])(context, **item.measure_params)
        verdict = judge_rule(measured.value, item.course, item.rule)
        what = f"{item.id}: {measured.value!r}, the course's {item.course!r}"
        if item.rule["kind"] == "close":
            (_, value, course), = entries(measured.value, item.course)[:1]
            bound = float(item.rule.get("atol", 0)) + float(item.rule.get("rtol", 0)) * abs(
                float(course))
            error = abs(value - float(course)) if math.isfinite(value) else math.inf
            rows.append(CheckRow(what, error, bound, "course value"))
        else:
            rows.append(CheckRow(f"{what} ({verdict.detail})", 0.0 if verdict.held else 1.0,
                                 0.0, "course value"))
    return rows


# --- backward -----------------------------------------------------------------------------


def backward_rows(impl: Implementation, unit: Unit, seeds: tuple[int, ...]
                  ) -> tuple[list[CheckRow], list[CheckRow]]:
    """cvlab's gradient check of the unit on the user's functions (or model) at each seed
    (the course's shapes), per row the worst over the seeds (a failing row names its seed);
    and the rows of the backward of each forward case with other shapes than the notebook's,
    against centered differences of the user's forward (numeric_case_rows)."""
    check = get_check(str(unit.check))
    per_seed = []
    for seed in seeds:
        rng = np.random.RandomState(seed)
        course = COURSE[unit.functions[0]]
        if course.returns == "class":  # numpy models' numeric gradients are taken remotely
            numeric = {} if course.module in TORCH_MODULES else {
                "numeric_of": RemoteModel.numeric_gradient}
            per_seed.append((seed, check(rng, net=remote_net(impl, unit.functions[0]),
                                         **numeric)))
        else:
            per_seed.append((seed, check(rng, impl.namespace(list(unit.functions),
                                                             fallback=True))))
    return worst_over_seeds(per_seed), shape_rows(impl, unit, seeds[0])


def shape_rows(impl: Implementation, unit: Unit, seed: int) -> list[CheckRow]:
    """The backward of each numpy forward case whose inputs are not the notebook's, against
    centered differences of the user's forward (numeric_case_rows)."""
    if unit.name not in CASES or COURSE[unit.functions[0]].module in TORCH_MODULES:
        return []
    yours = impl.namespace(list(unit.functions))
    return [row for case in CASES[unit.name](np.random.RandomState(seed))
            if case.backward is not None and not case.label.startswith("the notebook")
            for row in numeric_case_rows(case, yours)]


def worst_over_seeds(per_seed: list[tuple[int, list[CheckRow]]]) -> list[CheckRow]:
    """One row per `what`: its worst over the seeds; a failing one says at which seed."""
    worst: dict[str, tuple[float, int, CheckRow]] = {}
    for seed, rows in per_seed:
        for row in rows:
            if row.what not in worst or ratio(row) > worst[row.what][0]:
                worst[row.what] = (ratio(row), seed, row)
    seeds = ", ".join(str(seed) for seed, _ in per_seed)
    at = (lambda seed: f"seed {seed}") if len(per_seed) == 1 else \
        (lambda seed: f"seed {seed} of {seeds}")
    return [row if row.passed else replace(row, what=f"{row.what} ({at(seed)})")
            for _, seed, row in worst.values()]


def remote_net(impl: Implementation, name: str) -> Callable[..., RemoteModel]:
    """A builder that gradient checks call like the course's class (with cvlab's `rng` or
    `generator` for the weights): cvlab's model is built from those, the user's is built in
    the worker with the course's arguments and given the same params (it must have the same
    names and shapes: else wrong forward)."""
    cls = reference(name)

    def build(*args: Any, **kwargs: Any) -> RemoteModel:
        draws = {key: kwargs.pop(key) for key in ("rng", "generator") if key in kwargs}
        ref = cls(*args, **kwargs, **draws)
        course = {key: (None if key == "normalization" and value == "none" else value)
                  for key, value in kwargs.items()}
        model = RemoteModel(impl, name, args, course)
        row = _same_keys(f"{name}(...).params", model.params, ref.params)
        if not row.passed:
            raise ImplFailure("wrong forward", row.what)
        model.params = {key: _copy(value) for key, value in ref.params.items()}
        return model

    return build


def _copy(value: Any) -> Any:
    if hasattr(value, "detach"):
        return value.detach().clone()
    return np.array(value, copy=True)
