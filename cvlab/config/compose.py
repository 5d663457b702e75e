"""Compose a command's config the way Hydra will run it, before anything runs.

    plan = compose_plan("train", overrides, multirun=True)
    plan.base       the composed config (with its `hydra` node)
    plan.jobs       [(job overrides, typed config), ...]: every job of a sweep, checked

A sweep is expanded with Hydra's own parser and the basic sweeper's expansion (choice, range,
glob, lists), so that every job is composed and checked before the first one starts. A sampling
sweeper (Optuna) draws its points while it runs: each of its parameters is checked at each of
its listed values and at both ends of its intervals. Errors are ConfigError / UserError with
one line; Hydra's messages are never parsed (their exceptions' attributes are read).
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
    ValidationError,
)

from cvlab.config.store import register_schemas
from cvlab.config.typed import typed, unknown_key_message, without_hydra
from cvlab.errors import UserError
from cvlab.paths import config_dir


@dataclass
class Plan:
    base: DictConfig
    multirun: bool
    jobs: list[tuple[list[str], Any]] = field(default_factory=list)
    sampling: bool = False  # the jobs are points checked for a sampling sweeper, not its runs


@contextlib.contextmanager
def hydra_context() -> Iterator[Any]:
    """Hydra initialized on cvlab's configs (schemas registered); yields its Hydra object."""
    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            yield GlobalHydra.instance().hydra
    finally:
        GlobalHydra.instance().clear()


def compose_plan(command: str, overrides: list[str], multirun: bool,
                 hydra: Any = None) -> Plan:
    """The command's config and, for a sweep, every job's typed config (UserError if any
    job is not allowed). `hydra`: an initialized Hydra to reuse (hydra_context)."""
    if hydra is None:
        with hydra_context() as hydra:
            return _plan(hydra, command, overrides, multirun)
    return _plan(hydra, command, overrides, multirun)


def _plan(hydra: Any, command: str, overrides: list[str], multirun: bool) -> Plan:
    base = _compose(hydra, command, overrides, RunMode.MULTIRUN)
    multirun = multirun or str(base.hydra.mode) == "RunMode.MULTIRUN"
    if not multirun:
        cfg = _compose(hydra, command, overrides, RunMode.RUN)
        return Plan(cfg, False, [(overrides, _typed(command, cfg, None))])
    plan = Plan(base, True, sampling=samples_its_points(base))
    jobs = job_overrides(base, overrides)
    composed: dict[tuple[str, ...], DictConfig] = {}
    shared = shared_overrides(jobs) if len(jobs) > 1 else set()
    for number, job in enumerate(jobs):
        label = _job_label(number, len(jobs), job, shared)
        cfg = _compose_job(hydra, command, job, composed, label)
        plan.jobs.append((job, _typed(command, cfg, label)))
    return plan


def compose(command: str, overrides: list[str]) -> DictConfig:
    """One composed config (with its hydra node), as a single run sees it."""
    with hydra_context() as hydra:
        return _compose(hydra, command, overrides, RunMode.RUN)


def samples_its_points(base: DictConfig) -> bool:
    """Whether the sweeper draws its points while it runs (Optuna) instead of listing them."""
    return "BasicSweeper" not in str(OmegaConf.select(base, "hydra.sweeper._target_"))


def job_overrides(base: DictConfig, overrides: list[str]) -> list[list[str]]:
    """The override list of every job the sweep will run (or, for a sampling sweeper, the
    points to check)."""
    params = [f"{key}={value}" for key, value in
              (OmegaConf.select(base, "hydra.sweeper.params") or {}).items()]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    try:
        parsed = parser.parse_overrides([*params, *overrides])
    except HydraException as err:
        raise UserError(f"cannot read the sweep: {one_line(err)}") from None
    except ValueError as err:
        unreadable = _unreadable_override([*params, *overrides])
        raise UserError(unreadable or f"cannot read the sweep: {one_line(err)}") from None
    if samples_its_points(base):
        return _check_points(parsed)
    values = {}
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override() and not override.is_discrete_sweep():
            raise UserError(f"{key}: a continuous range ({override.value_type.name}) needs a "
                            "sampling sweeper, e.g. hydra/sweeper=optuna; the basic sweeper "
                            "takes lists, choice(), range() and glob()")
        values[key] = ([f"{key}={v}" for v in override.sweep_string_iterator()]
                       if override.is_sweep_override() else [_plain(override)])
    return [list(job) for job in itertools.product(*values.values())]


def _check_points(parsed: list[Override]) -> list[list[str]]:
    """For a sampling sweeper: every listed value and both ends of every interval of each
    parameter, the others at their first value."""
    options = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_interval_sweep():
            sweep = override.value()
            options.append([f"{key}={sweep.start}", f"{key}={sweep.end}"])
        elif override.is_sweep_override():
            options.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            options.append([_plain(override)])
    jobs = []
    for i, values in enumerate(options):
        for value in values:
            jobs.append([o[0] for o in options[:i]] + [value] + [o[0] for o in options[i + 1:]])
    return jobs or [[]]


def _compose_job(hydra: Any, command: str, job: list[str],
                 composed: dict[tuple[str, ...], DictConfig], label: str) -> DictConfig:
    """A job's config: jobs that differ only in plain `key=value` overrides share one Hydra
    composition, their values set on a copy (as Hydra sets them: typed, in order)."""
    loader = GlobalHydra.instance().config_loader()
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(job)
    plain = [o for o in parsed if _is_plain_key(o, loader)]
    rest = tuple(o.input_line or _plain(o) for o in parsed if o not in plain)
    if rest not in composed:
        composed[rest] = without_hydra(_compose(hydra, command, list(rest), RunMode.RUN, label))
    cfg = composed[rest].copy()
    for override in plain:
        try:
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=False)
        except (OmegaConfBaseException, ValueError) as err:
            raise UserError(_job_prefix(label) + composition_message(err, command)) from None
    return cfg


def _is_plain_key(override: Override, loader: Any) -> bool:
    """`a.b=value`: no +/++/~, no package, not a config group, not a Hydra setting."""
    key = override.key_or_group
    return (override.type.name == "CHANGE" and override.package is None
            and not key.startswith("hydra") and not _is_group(key, loader))


_GROUPS: dict[str, bool] = {}


def _is_group(key: str, loader: Any) -> bool:
    if key not in _GROUPS:
        _GROUPS[key] = bool(loader.get_group_options(key))
    return _GROUPS[key]


def shared_overrides(jobs: list[list[str]]) -> set[str]:
    """The overrides every job has (what is left of a job's list says how it differs)."""
    return set.intersection(*map(set, jobs)) if jobs else set()


def _job_label(number: int, total: int, job: list[str], shared: set[str]) -> str:
    """`sweep job 3 of 40 (a=1 b=2)`: the job's overrides that differ between jobs."""
    varying = [o for o in job if o not in shared]
    return f"sweep job {number} of {total} ({' '.join(varying)})"


def _plain(override: Override) -> str:
    return override.input_line or f"{override.get_key_element()}={override.value()}"


def _compose(hydra: Any, command: str, overrides: list[str], mode: RunMode,
             job: str | None = None) -> DictConfig:
    try:
        return hydra.compose_config(command, overrides, run_mode=mode,
                                    with_log_configuration=False)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        unreadable = _unreadable_override(overrides) if _is_plain_value_error(err) else None
        raise UserError(_job_prefix(job) + (unreadable or composition_message(err, command))) \
            from None


def _is_plain_value_error(err: BaseException) -> bool:
    """A ValueError of Python's own (Hydra's parser converting a value), which names no key."""
    return isinstance(err, ValueError) and not isinstance(err, OmegaConfBaseException)


def _unreadable_override(overrides: list[str]) -> str | None:
    """One line naming the first override whose value Hydra's parser cannot convert (an
    integer of more digits than Python converts, ...), found by parsing each alone; None
    when each parses alone."""
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except HydraException:
            continue
        except ValueError as err:
            return _unreadable_value(override, err)
    return None


def _unreadable_value(override: str, err: ValueError) -> str:
    """`key: ...` for an override whose value cannot be converted."""
    key, _, value = override.lstrip("+~").partition("=")
    limit = sys.get_int_max_str_digits()
    longest = max((len(run) for run in re.findall(r"\d+", value)), default=0)
    if limit and longest > limit:
        return (f"{key}: a number of {longest} digits is too long to read (at most {limit} "
                "digits); give a smaller value")
    return f"{key}={_shortened(value)} cannot be read: {one_line(err)}"


def _shortened(text: str, limit: int = 40) -> str:
    """`text`, or its start and its length when it is longer than `limit` characters."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _typed(command: str, cfg: DictConfig, job: str | None) -> Any:
    """The typed config (cvlab.config.typed); its one-line error named after the job."""
    try:
        return typed(command, cfg)
    except UserError as err:  # a value not allowed, or a key its schema does not have
        raise UserError(_job_prefix(job) + str(err)) from None
    except OmegaConfBaseException as err:  # an interpolation that does not resolve, a missing value
        raise UserError(_job_prefix(job) + composition_message(err, command)) from None


def _job_prefix(job: str | None) -> str:
    return f"{job}: " if job else ""


def composition_message(err: BaseException, command: str) -> str:
    """One line for an error Hydra raised while composing, from the exception's attributes:
    the missing option or key, a did-you-mean and what is allowed."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        return _missing_option(err)
    for candidate in _chain(err):
        if isinstance(candidate, (ConfigKeyError, ConfigAttributeError)) and candidate.full_key:
            return _unknown_key(candidate)
        if isinstance(candidate, ValidationError) and candidate.full_key:
            value = _shortened(repr(getattr(candidate, "value", None)))
            return f"{candidate.full_key}={value} is not allowed: {_expected(candidate)}"
    return f"invalid config or override: {one_line(err)} (see cvlab {command} --help)"


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = err
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _missing_option(err: MissingConfigException) -> str:
    group, _, name = str(err.missing_cfg_file).rpartition("/")
    options = [o for o in (err.options or []) if not o.endswith("_schema")]
    guess = difflib.get_close_matches(name, options, n=1)
    hint = f" (did you mean {group}={guess[0]}?)" if guess else ""
    where = f"{group}={name}" if group else name
    return f"unknown option {where}{hint}; valid options: {', '.join(sorted(options))}"


def _unknown_key(err: OmegaConfBaseException) -> str:
    return unknown_key_message(str(err.full_key), err.object_type)


TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _expected(err: ValidationError) -> str:
    """What the field takes, from its declared type in the schema (else the error's text)."""
    import typing

    try:
        declared = typing.get_type_hints(err.object_type).get(str(err.key))
    except (TypeError, NameError):
        declared = None
    args = [a for a in typing.get_args(declared) if a is not type(None)]
    if declared in TYPE_WORDS:
        return TYPE_WORDS[declared]
    if len(args) == 1 and args[0] in TYPE_WORDS:
        origin = typing.get_origin(declared)
        if origin is list:
            return f"a list of {TYPE_WORDS[args[0]].split(' ', 1)[1]}s, e.g. [1,2]"
        return TYPE_WORDS[args[0]] + ", or null"
    return (str(err).splitlines() or [type(err).__name__])[0]


def one_line(err: BaseException) -> str:
    """An exception's message folded into one line (Hydra's are multi-line)."""
    text = str(err)
    cause = err.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += "\n" + str(cause)
    parts = [line.strip() for line in text.splitlines() if line.strip(' \t"')]
    parts = [p for p in parts if not p.startswith(("full_key:", "object_type", "reference_type",
                                                   "Config search path"))]
    if "Traceback (most recent call last):" in parts:  # a worker's traceback, quoted: its
        start = parts.index("Traceback (most recent call last):")  # last line says what failed
        parts = [*parts[:start], parts[-1]]
    return "; ".join(parts)


__all__ = ["Plan", "compose", "compose_plan", "composition_message", "hydra_context",
           "job_overrides", "one_line"]
