"""A non-editable install finds its configs from an unrelated working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_non_editable_install_runs_from_another_folder(tmp_path):
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    assert (target / "cvlab" / "configs" / "train.yaml").is_file()
    assert list((target / "cvlab" / "configs" / "model").glob("*.yaml"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    probe = subprocess.run(
        [sys.executable, "-c", "import cvlab, cvlab.paths; print(cvlab.__file__);"
         "print(cvlab.paths.config_dir())"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines() == [
        str(target / "cvlab" / "__init__.py"), str(target / "cvlab" / "configs")
    ]
    result = subprocess.run(
        [sys.executable, "-m", "cvlab.cli", "train", "--help"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "model: " in result.stdout and "bn_fc" in result.stdout
