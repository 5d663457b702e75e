"""The rule kinds that judge a measured value against the course's: `close`, `range`,
`threshold` and `pattern`.

Each kind is `rule(value, course, **params) -> Verdict`, registered with `@rule("kind")` and
looked up with `get_rule(kind)`. A value (and a course value) is a number, a list of numbers
or a dict of numbers; `close`, `range` and `threshold` hold when every entry does, and their
detail names the worst entry. `pattern` runs a named predicate over a sweep's series (the
value is a dict {series name: [[x, y], ...]}); predicates register with `@pattern("name")`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """Whether an item's value keeps the course's claim, and one line saying why."""

    held: bool
    detail: str


Rule = Callable[..., Verdict]
Pattern = Callable[..., Verdict]
_RULES: dict[str, Rule] = {}
_PATTERNS: dict[str, Pattern] = {}


def rule(kind: str) -> Callable[[Rule], Rule]:
    """Register a rule kind `f(value, course, **params) -> Verdict` as `kind`."""
    def add(fn: Rule) -> Rule:
        _RULES[kind] = fn
        return fn

    return add


def pattern(name: str) -> Callable[[Pattern], Pattern]:
    """Register a pattern predicate `f(series, **params) -> Verdict` as `name`."""
    def add(fn: Pattern) -> Pattern:
        _PATTERNS[name] = fn
        return fn

    return add


def rule_kinds() -> list[str]:
    return sorted(_RULES)


def pattern_names() -> list[str]:
    return sorted(_PATTERNS)


def get_rule(kind: str) -> Rule:
    """The rule of `kind`; ValueError listing the valid kinds when there is none."""
    if kind not in _RULES:
        raise ValueError(f"unknown rule kind {kind!r}; valid: {', '.join(rule_kinds())}")
    return _RULES[kind]


def get_pattern(name: str) -> Pattern:
    """The pattern predicate `name`; ValueError listing the valid ones when there is none."""
    if name not in _PATTERNS:
        raise ValueError(f"unknown pattern {name!r}; valid: {', '.join(pattern_names())}")
    return _PATTERNS[name]


def judge(value: Any, course: Any, spec: Mapping[str, Any]) -> Verdict:
    """Apply the rule `spec` ({kind: ..., params...}) to a measured value. A missing value
    (None) never holds."""
    params = {key: val for key, val in spec.items() if key != "kind"}
    if value is None:
        return Verdict(False, "no value was measured")
    return get_rule(spec["kind"])(value, course, **params)


# --- entries ---------------------------------------------------------------------------------


def entries(value: Any, course: Any = None) -> list[tuple[str, float, Any]]:
    """(label, value entry, matching course entry or None) for a number, a list or a dict.

    A course given as a list or dict must match the value's length or keys (ValueError)."""
    if isinstance(value, Mapping):
        if isinstance(course, Mapping) and set(course) != set(value):
            raise ValueError(f"value keys {sorted(value)} differ from the course's "
                             f"{sorted(course)}")
        return [(str(key), float(val), course[key] if isinstance(course, Mapping) else None)
                for key, val in value.items()]
    if isinstance(value, (list, tuple)):
        if isinstance(course, (list, tuple)) and len(course) != len(value):
            raise ValueError(f"{len(value)} values against {len(course)} course values")
        return [(f"[{index}]", float(val),
                 course[index] if isinstance(course, (list, tuple)) else None)
                for index, val in enumerate(value)]
    return [("", float(value), course if not isinstance(course, (list, tuple, Mapping))
             else None)]


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _worst(rows: list[tuple[str, float, float]], what: str, bound: str) -> str:
    """'<what> <value> at <label> (<bound>)' for the row with the largest excess."""
    label, _, shown = max(rows, key=lambda row: row[1])
    where = f" at {label}" if label else ""
    return f"{what} {_fmt(shown)}{where} ({bound})"


# --- the kinds -------------------------------------------------------------------------------


@rule("close")
def close(value: Any, course: Any, atol: float = 0.0, rtol: float = 0.0) -> Verdict:
    """|value - course| <= atol + rtol * |course| for every entry."""
    rows = []
    for label, measured, expected in entries(value, course):
        expected = float(expected)
        excess = abs(measured - expected) - (atol + rtol * abs(expected))
        if not math.isfinite(measured):
            excess = math.inf
        rows.append((label, excess, abs(measured - expected)))
    held = all(excess <= 0 for _, excess, _ in rows)
    return Verdict(held, _worst(rows, "|value - course| =", f"allowed atol {atol:g} + rtol "
                                f"{rtol:g} x |course|"))


@rule("range")
def within(value: Any, course: Any, low: float | None = None,
           high: float | None = None) -> Verdict:
    """low <= value <= high for every entry; bounds from the params, else course [low, high].
    A course given as a dict (the printed errors of a check) must have the value's keys."""
    if low is None and high is None:
        low, high = course
    low = -math.inf if low is None else float(low)
    high = math.inf if high is None else float(high)
    rows = entries(value, course if isinstance(course, Mapping) else None)
    outside = [(label, v) for label, v, _ in rows if not (math.isfinite(v) and low <= v <= high)]
    allowed = f"allowed {low:g} .. {high:g}"
    if outside:
        return Verdict(False, "outside: " + ", ".join(f"{label or 'value'} {_fmt(v)}"
                                                      for label, v in outside) + f" ({allowed})")
    label, largest, _ = max(rows, key=lambda row: row[1])
    return Verdict(True, f"largest {_fmt(largest)}{f' at {label}' if label else ''} ({allowed})")


OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@rule("threshold")
def threshold(value: Any, course: Any, op: str, bound: float | str) -> Verdict:
    """value <op> bound for every entry (op: > >= < <=); bound "course" takes the course's
    number."""
    if op not in OPERATORS:
        raise ValueError(f"threshold op {op!r}; valid: {', '.join(OPERATORS)}")
    limit = float(course if bound == "course" else bound)
    compare = OPERATORS[op]
    rows = entries(value)
    failed = [row for row in rows if not (math.isfinite(row[1]) and compare(row[1], limit))]
    # shown: the first entry that fails, else the one closest to the bound
    label, shown, _ = failed[0] if failed else min(rows, key=lambda row: abs(row[1] - limit))
    where = f" at {label}" if label else ""
    return Verdict(not failed, f"{'worst' if len(rows) > 1 else 'value'} {_fmt(shown)}{where} "
                               f"(needs {op} {limit:g})")


@rule("pattern")
def pattern_rule(value: Any, course: Any, name: str, **params: Any) -> Verdict:
    """The named pattern predicate over the value's series."""
    return get_pattern(name)(value, **params)


# --- pattern predicates over sweep series ----------------------------------------------------
# A predicate gets the value as `curves`, {series name: [[x, y], ...]} (a sweep_series measure),
# and the rule's other params.

Curves = Mapping[str, list[list[float]]]


def _points(curves: Curves, name: str) -> tuple[list[float], list[float]]:
    """The (x, y) of series `name`, sorted by x; ValueError when it is missing or empty."""
    points = sorted((float(x), float(y)) for x, y in curves.get(name, []))
    if not points:
        raise ValueError(f"no series {name!r} (series: {', '.join(curves) or 'none'})")
    return [x for x, _ in points], [y for _, y in points]


@pattern("robust")
def robust(curves: Curves, normalized: str, baseline: str, fraction: float, chance: float,
           margin: float, x_max: float | None = None) -> Verdict:
    """The normalized series stays >= `fraction` of its best at every x <= `x_max` (all x when
    None), while the baseline is at or below chance + `margin` at its smallest x (e.g.
    batchnorm learns from every weight scale up to 0.1; the baseline's signal vanishes at the
    smallest)."""
    xs, ys = _points(curves, normalized)
    kept = [(x, y) for x, y in zip(xs, ys) if x_max is None or x <= x_max]
    if not kept:
        raise ValueError(f"series {normalized!r} has no point at x <= {x_max}")
    best = max(y for _, y in kept)
    low_x, low_y = min(kept, key=lambda point: point[1])
    base_x, base_y = _points(curves, baseline)
    held = low_y >= fraction * best and base_y[0] <= chance + margin
    upto = f" up to x={x_max:g}" if x_max is not None else ""
    return Verdict(held, f"{normalized}{upto}: lowest {_fmt(low_y)} at x={low_x:g} vs "
                         f"{fraction:g} x its best {_fmt(best)}; {baseline} at x={base_x[0]:g}: "
                         f"{_fmt(base_y[0])} (needs <= chance {chance:g} + {margin:g})")


@pattern("exceeds_at_largest_x")
def exceeds_at_largest_x(curves: Curves, name_above: str, name_below: str,
                         factor: float) -> Verdict:
    """At the largest x, series `name_above` is more than `factor` times series `name_below`
    (e.g. the baseline's final loss blows up where batchnorm's stays bounded)."""
    xs_above, above = _points(curves, name_above)
    xs_below, below = _points(curves, name_below)
    held = math.isfinite(below[-1]) and not above[-1] <= factor * below[-1]
    return Verdict(held, f"at x={xs_above[-1]:g}: {name_above} {_fmt(above[-1])} vs {factor:g} "
                         f"x {name_below} {_fmt(below[-1])} (x={xs_below[-1]:g})")


@pattern("flatter_than")
def flatter_than(curves: Curves, series: str, reference: str, ratio: float) -> Verdict:
    """The spread (max - min over x) of `series` is below `ratio` times the spread of
    `reference` (e.g. layernorm depends much less on the batch size than batchnorm)."""
    _, ys = _points(curves, series)
    _, ref = _points(curves, reference)
    spread, ref_spread = max(ys) - min(ys), max(ref) - min(ref)
    held = spread < ratio * ref_spread
    return Verdict(held, f"spread of {series} {_fmt(spread)} vs {ratio:g} x spread of "
                         f"{reference} {_fmt(ref_spread)}")
