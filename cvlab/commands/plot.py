"""`cvlab plot`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvlab.errors import NotAvailableYet


def main(cfg: Any, run_dir: Path) -> int:
    raise NotAvailableYet("`cvlab plot` is not available yet")
