"""CIFAR-10 (being written)."""

from __future__ import annotations

from pathlib import Path

from cvlab.errors import UserError
from cvlab.paths import dataset_root


def resolve_root(root: str | None) -> Path:
    return dataset_root("cifar10", root)


def find_source(root: Path):
    return None


def load_arrays(root, download=False, announce=print):
    raise UserError(f"CIFAR-10 not found under {resolve_root(root)}")
