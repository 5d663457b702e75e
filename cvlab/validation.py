"""The checks every schema runs in its __post_init__ (configs, models, datasets): a bad value
is a ConfigError, one line naming the key, the value and what is allowed.

    check(0 < keep <= 1, "dropout_keep_ratio", keep, "a keep probability in (0, 1]")

A leaf module: the config layer and the model schemas both use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from cvlab.errors import UserError

SEED_LIMIT = 2**32  # numpy's RandomState takes seeds in [0, 2**32)


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
    """A finite number > 0 (or None when allowed)."""
    if value is None and allow_none:
        return
    check(value is not None and math.isfinite(value) and value > 0, key, value,
          "a finite number > 0")


def check_seed(key: str, value: int) -> None:
    check(0 <= value < SEED_LIMIT, key, value, "an integer in [0, 2**32) (numpy's seeds)")
