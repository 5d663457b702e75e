"""Config schemas and their validation.

Each command's config is checked against dataclass schemas before any work: misspelled keys,
wrong types and out-of-range values become a ConfigError with one line naming the key, the
bad value and what is allowed. Sections whose fields depend on a choice (`model` by its
`type`) are looked up in a registry of schemas.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cvlab.errors import UserError

T = TypeVar("T")

DTYPES = ("float32", "float64")


class ConfigError(UserError):
    """One bad config value: `key`, `value` and what is `allowed`."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed: {allowed}")

    def prefixed(self, prefix: str) -> ConfigError:
        return ConfigError(f"{prefix}.{self.key}" if prefix else self.key, self.value, self.allowed)


def check(condition: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ConfigError(key, value, allowed) unless `condition` holds."""
    if not condition:
        raise ConfigError(key, value, allowed)


def check_choice(key: str, value: Any, choices: Iterable[Any]) -> None:
    choices = list(choices)
    check(value in choices, key, value, "one of " + ", ".join(map(str, choices)))


def check_positive(key: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    check(value is not None and value > 0, key, value, "a number > 0")


def build(schema: type[T], node: Any, prefix: str = "") -> T:
    """Check `node` (a DictConfig or dict) against the dataclass `schema`; return an instance.

    Unknown keys and wrong types raise ConfigError; so do the range checks that the
    dataclass runs in __post_init__ (which raise ConfigError with the key inside the section).
    """
    if node is None:
        node = {}
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    for name, sub in _dataclass_fields(schema).items():
        if isinstance(node, Mapping) and isinstance(node.get(name), Mapping):
            build(sub, node[name], f"{prefix}.{name}" if prefix else name)  # nested key names
    base = OmegaConf.structured(schema)
    try:
        merged = OmegaConf.merge(base, node)
        obj = OmegaConf.to_object(merged)
    except ConfigError as err:
        raise err.prefixed(prefix) from None
    except OmegaConfBaseException as err:
        raise _from_omegaconf(err, schema, node, prefix) from None
    return obj  # type: ignore[return-value]


def _from_omegaconf(
    err: OmegaConfBaseException, schema: type, node: Any, prefix: str
) -> ConfigError:
    key = getattr(err, "full_key", None) or getattr(err, "key", None) or "?"
    key = str(key)
    full = f"{prefix}.{key}" if prefix else key
    value = _lookup(node, key)
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    fields = _field_names(schema, key)
    if "not in struct" in str(err) or "Key '" in message and "not in" in message:
        return ConfigError(full, value, "unknown key; valid keys: " + ", ".join(fields))
    field_type = _field_type(schema, key)
    allowed = f"a value of type {field_type}" if field_type else message
    return ConfigError(full, value, allowed)


def _dataclass_fields(schema: type) -> dict[str, type]:
    """The fields of `schema` whose type is itself a dataclass."""
    hints = typing.get_type_hints(schema)
    return {name: hint for name, hint in hints.items() if dataclasses.is_dataclass(hint)}


def _lookup(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return None
    return node


def _field_names(schema: type, dotted: str) -> list[str]:
    cls: Any = schema
    for part in dotted.split(".")[:-1]:
        sub = _dataclass_fields(cls).get(part) if dataclasses.is_dataclass(cls) else None
        if sub is None:
            break
        cls = sub
    return [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []


def _field_type(schema: type, dotted: str) -> str:
    cls: Any = schema
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(cls):
            return ""
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return ""
        cls = hints[part]
    text = getattr(cls, "__name__", None) if not typing.get_args(cls) else None
    return text or str(cls).replace("typing.", "")
