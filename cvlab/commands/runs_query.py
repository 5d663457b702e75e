"""What `cvlab runs` asks of the runs it read (cvlab.commands.runs_index): keys resolved to
columns, where terms parsed and applied, rows sorted, groups averaged, two configs compared.

Keys: a summary field (status, family, model_type, experiment, dataset, tags or tag, folder,
wall_time_s, ...), a metric (best_val_acc, ...), a setting (seed, weight_scale, ...), a dotted
config key (model.weight_scale, optimizer.learning_rate, ...) or a top-level config key (seed,
baseline, ...). A bare name is looked up in that order; `metrics.<name>`, `settings.<name>` and
`config.<key>` name one source. Every bad key or term is a UserError: one line saying what was
wrong and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from dataclasses import dataclass
from typing import Any

from cvlab.commands.runs_index import CONFIG_COLUMN, SUMMARY_FIELDS, RunsIndex
from cvlab.errors import UserError
from cvlab.records.summary import METRIC_KEYS

OPERATORS = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
SYMBOLIC = re.compile(r"^([A-Za-z_][\w.]*)(<=|>=|!=|==|=|<|>)(.*)$")
TAG_KEYS = ("tag", "tags")
MISSING = "null"  # how a where term names a missing value (experiment:null)
ABSENT = "(absent)"  # a diff's value for a key one config lacks


@dataclass(frozen=True)
class Term:
    """One condition of `where`: key, operator (eq, ne, lt, le, gt, ge) and value."""

    key: str
    operator: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}{OPERATORS[self.operator]}{self.value}"


def parse_terms(terms: list[str]) -> list[Term]:
    """where terms: `key:value`, `key:op:value` (op: eq ne lt le gt ge) or, quoted for Hydra,
    `key=value`, `key!=value`, `key<value`, `key<=value`, `key>value`, `key>=value`."""
    return [parse_term(term) for term in terms]


def parse_term(term: str) -> Term:
    """One where term as a Term; UserError naming the term for a bad operator or shape."""
    allowed = ("write key:value or key:op:value with op one of eq, ne, lt, le, gt, ge (e.g. "
               "where='status:completed best_val_acc:gt:0.3')")
    symbolic = SYMBOLIC.match(term)
    if symbolic:
        key, sign, value = symbolic.groups()
        if value[:1] in ("=", "<", ">", "!"):
            raise UserError(f"where term {term!r}: unknown operator {sign + value[:1]!r}; "
                            f"{allowed}")
        operator = {symbol: word for word, symbol in OPERATORS.items()}.get(sign, "eq")
        return Term(key, operator, value)
    parts = term.split(":")
    if len(parts) == 2 and parts[0]:
        return Term(parts[0], "eq", parts[1])
    if len(parts) == 3 and parts[0]:
        if parts[1] not in OPERATORS:
            raise UserError(f"where term {term!r}: unknown operator {parts[1]!r}; {allowed}")
        return Term(parts[0], parts[1], parts[2])
    raise UserError(f"where term {term!r} is not a condition; {allowed}")


# ---- keys ----------------------------------------------------------------------------------


@functools.cache
def schema_keys() -> frozenset[str]:
    """Every dotted key a `cvlab train` config can have (its schema and every model's)."""
    from cvlab.config.train import TrainConfig
    from cvlab.models.registry import schemas

    keys = set(_dataclass_keys(TrainConfig, ""))
    for schema in schemas().values():
        keys.update(_dataclass_keys(schema, "model."))
    return frozenset(keys)


def _dataclass_keys(schema: type, prefix: str) -> list[str]:
    """The dotted keys of a schema's fields, nested sections walked (model left out)."""
    keys = []
    for item in dataclasses.fields(schema):
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING \
            else item.default
        if dataclasses.is_dataclass(default):
            keys += _dataclass_keys(type(default), f"{prefix}{item.name}.")
        elif item.name != "model":
            keys.append(prefix + item.name)
    return keys


def resolve(key: str, index: RunsIndex, asked_in: str) -> str:
    """The column of the index's frame that `key` (asked for in `asked_in`: where, sort, ...)
    names, adding a config column when asked for; UserError (with a did-you-mean) for a key
    no run and no schema has."""
    frame = index.frame
    if key in TAG_KEYS:
        return "tags"
    if key in ("folder", *SUMMARY_FIELDS):
        return key
    source, _, name = key.partition(".")
    if source in ("metrics", "settings") and name:
        if key in frame.columns or (source == "metrics" and name in METRIC_KEYS):
            return _ensure(frame, key)
        return _unknown(key, index, asked_in)
    if source == "config" and name:
        return _config_column(name, index) or _unknown(key, index, asked_in)
    if "." not in key:
        for column in (f"metrics.{key}", f"settings.{key}"):
            if column in frame.columns:
                return column
        if key in METRIC_KEYS:
            return _ensure(frame, f"metrics.{key}")
    return _config_column(key, index) or _unknown(key, index, asked_in)


def _ensure(frame: Any, column: str) -> str:
    """`column`, added (empty) to the frame when no run has it."""
    if column not in frame.columns:
        frame[column] = None
    return column


def _config_column(key: str, index: RunsIndex) -> str | None:
    """`config.<key>` filled from the runs' configs, when a run or the schema has the key."""
    column = f"config.{key}"
    frame = index.frame
    if column in frame.columns:
        return column
    configs = frame[CONFIG_COLUMN]
    if key not in schema_keys() and not configs.map(lambda config: key in config).any():
        return None
    frame[column] = configs.map(lambda config: config.get(key)) if len(frame) else None
    return column


def _unknown(key: str, index: RunsIndex, asked_in: str) -> str:
    """Raise the UserError of a key nothing has: a did-you-mean and the keys there are."""
    columns = list(index.frame.columns)
    metrics = sorted({column.partition(".")[2] for column in columns
                      if column.startswith("metrics.")} | set(METRIC_KEYS))
    settings = sorted({column.partition(".")[2] for column in columns
                       if column.startswith("settings.")})
    configs = sorted(schema_keys().union(*index.frame[CONFIG_COLUMN].tolist()))
    names = ["folder", "tag", *SUMMARY_FIELDS, *metrics, *settings, *configs]
    guess = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean {guess[0]}?)" if guess else ""
    raise UserError(f"unknown key {key!r} in {asked_in}{hint}; keys: a summary field ("
                    f"{', '.join(['folder', 'tag', *SUMMARY_FIELDS])}), a metric "
                    f"({', '.join(metrics)}), a setting ({', '.join(settings) or 'none'}) or a "
                    "config key such as model.weight_scale (cvlab train --help lists them)")


# ---- values --------------------------------------------------------------------------------


def is_missing(value: Any) -> bool:
    """None or NaN: a value a run does not have."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: Any) -> float:
    """A cell as a float (NaN when it is not a number; true/false are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def text(value: Any) -> str:
    """A cell as a where term or a group spells it: null, true/false, 0.01, [a,b]."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def numbers_of(series: Any) -> Any:
    """The column as floats (NaN where a cell is not a number)."""
    return series.map(number).astype(float)


def texts_of(series: Any) -> Any:
    """The column as texts (see text)."""
    return series.map(text)


def parse_number(value: str) -> float | None:
    """A where value as a number, or None when it is not one."""
    try:
        return float(value)
    except ValueError:
        return None


# ---- filter, sort, group, diff -------------------------------------------------------------


def where_mask(index: RunsIndex, term: Term) -> Any:
    """The rows of the index's frame for which `term` holds."""
    column = resolve(term.key, index, "where")
    series = index.frame[column]
    if column == "tags":
        if term.operator not in ("eq", "ne"):
            raise UserError(f"where term {term}: tag takes : (has the tag) or :ne: (has not); "
                            f"e.g. where=tag:baseline")
        has = series.map(lambda tags: term.value in tags)
        return has if term.operator == "eq" else ~has
    wanted = parse_number(term.value)
    if term.operator in ("eq", "ne"):
        equal = texts_of(series) == term.value
        if wanted is not None:
            equal |= numbers_of(series) == wanted
        return equal if term.operator == "eq" else ~equal
    if wanted is not None:
        values, wanted_value = numbers_of(series), wanted
    else:
        values, wanted_value = texts_of(series).where(~series.map(is_missing)), term.value
    compare = {"lt": values.lt, "le": values.le, "gt": values.gt, "ge": values.ge}
    return compare[term.operator](wanted_value).fillna(False).astype(bool)


def sort_frame(frame: Any, column: str, descending: bool) -> Any:
    """Rows ordered by `column` (numbers as numbers; missing values last); ties keep their
    order."""
    ranked = frame.assign(_order=sort_order(frame[column]))
    ranked = ranked.sort_values("_order", ascending=not descending, kind="stable",
                                na_position="last")
    return ranked.drop(columns="_order")


def sort_order(series: Any) -> Any:
    """What a column sorts by: its numbers when it has any, else its texts (missing values
    NaN either way)."""
    numbers = numbers_of(series)
    if numbers.notna().any():
        return numbers
    return texts_of(series).where(~series.map(is_missing))


def group_stats(frame: Any, keys: dict[str, str], metrics: dict[str, str]) -> Any:
    """One row per value of the group keys ({label: column}): `runs`, and the mean, std
    (sample, n-1) and count of each metric ({label: column}); ordered by the keys."""
    import pandas as pd

    data = pd.DataFrame({label: texts_of(frame[column]) for label, column in keys.items()})
    for label, column in metrics.items():
        values = numbers_of(frame[column])
        if values.isna().all() and not frame[column].map(is_missing).all():
            raise UserError(f"metrics: {label} is not a number in these runs; name metrics "
                            "such as best_val_acc, final_loss_mean, wall_time_s")
        data[f"_value {label}"] = values
    grouped = data.groupby(list(keys), dropna=False, sort=False)
    result = grouped.size().rename("runs").to_frame()
    for label in metrics:
        stats = grouped[f"_value {label}"].agg(["mean", "std", "count"])
        for stat in ("mean", "std", "count"):
            result[f"{label}_{stat}"] = stats[stat]
    result = result.reset_index()
    for label, column in keys.items():  # each group's key as the runs hold it (0.01, not "0.01")
        held = dict(zip(data[label], frame[column].astype(object)))
        result[label] = result[label].map(held).astype(object)
    for label in reversed(list(keys)):
        result = sort_frame(result, label, descending=False)
    return result.reset_index(drop=True)


def config_diff(first: dict[str, Any], second: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, first value, second value) of every flattened config key whose values differ
    (ABSENT where a config lacks the key), in the configs' order."""
    keys = list(dict.fromkeys([*first, *second]))
    return [(key, first.get(key, ABSENT), second.get(key, ABSENT)) for key in keys
            if first.get(key, ABSENT) != second.get(key, ABSENT)]
