"""Shared test helpers: run the installed console script in a clean working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CVLAB = str(Path(sys.executable).with_name("cvlab"))


def run_cvlab(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None):
    """Run `cvlab args...` from `cwd`; returns the CompletedProcess (text mode)."""
    full_env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore::DeprecationWarning")
    full_env.update(env or {})
    return subprocess.run(
        [CVLAB, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )


@pytest.fixture
def cvlab(tmp_path):
    """`cvlab(*args)` runs the console script in tmp_path with outputs under tmp_path/outputs."""

    def call(*args: str, timeout: float = 300, env: dict | None = None):
        return run_cvlab(*args, cwd=tmp_path, timeout=timeout, env=env)

    return call


def real_cifar_root() -> Path | None:
    """The extracted real CIFAR-10 under $CVLAB_DATA, or None."""
    data = os.environ.get("CVLAB_DATA")
    if not data:
        return None
    root = Path(data) / "cifar10"
    if (root / "train").is_dir() or (root / "cifar-10-batches-py").is_dir():
        return root
    return None


requires_cifar = pytest.mark.skipif(
    real_cifar_root() is None, reason="real CIFAR-10 not found: set CVLAB_DATA (see .ci/run)"
)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: small tensors run faster so on a shared 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
