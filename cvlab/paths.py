"""Where cvlab finds its configs and data: resolved here and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The folder holding `train.yaml` and the config groups.

    An installed package carries it as `cvlab/configs`; a source checkout (or an editable
    install) keeps it at the top of the repository as `configs/`.
    """
    for candidate in (PACKAGE_DIR / "configs", PACKAGE_DIR.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"cvlab configs not found next to {PACKAGE_DIR}; reinstall with `pip install .`"
    )


def data_home() -> Path:
    """Root under which datasets live: $CVLAB_DATA, else ~/.cache/cvlab."""
    env = os.environ.get("CVLAB_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "cvlab"


def dataset_root(name: str, root: str | os.PathLike | None = None) -> Path:
    """Folder of one dataset: an explicit `root`, else `data_home() / name`."""
    if root:
        return Path(root).expanduser()
    return data_home() / name


def cache_home() -> Path:
    """Where decoded arrays and generated datasets are cached ($CVLAB_CACHE or ~/.cache/cvlab)."""
    env = os.environ.get("CVLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cvlab"
