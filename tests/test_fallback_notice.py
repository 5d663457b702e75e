"""The numpy-fallback notice: one line when the compiled kernels are missing, once per process
and once per sweep (the sweep's workers stay silent), never when they are built."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import TINY_DATA

from cvlab.layers import fast

NOTICE = "the compiled fast layers (cvlab.ext) are not built"


def test_notice_once_per_process_and_inherited_silence(monkeypatch):
    monkeypatch.setattr(fast, "_compiled", None)
    monkeypatch.delenv(fast.FALLBACK_NOTICE_SHOWN, raising=False)
    monkeypatch.delenv("CVLAB_FAST_LAYERS", raising=False)
    lines = []
    fast.announce_fallback(lines.append)
    fast.announce_fallback(lines.append)
    assert len(lines) == 1 and lines[0].startswith(NOTICE) and "make install" in lines[0]
    assert os.environ[fast.FALLBACK_NOTICE_SHOWN] == "1"  # what child processes inherit


def test_no_notice_when_built_or_chosen(monkeypatch):
    monkeypatch.delenv(fast.FALLBACK_NOTICE_SHOWN, raising=False)
    monkeypatch.setattr(fast, "_compiled", object())
    assert fast.fallback_notice() is None
    monkeypatch.setattr(fast, "_compiled", None)
    monkeypatch.setenv("CVLAB_FAST_LAYERS", "numpy")  # the user asked for the fallback
    assert fast.fallback_notice() is None


def test_a_parallel_sweep_without_the_extension_says_it_once(tmp_path):
    # every process of the sweep (the launcher and its joblib workers) lacks cvlab.ext
    hide = tmp_path / "hide_ext"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\nsys.modules['cvlab.ext.im2col'] = None\n")
    env = {**os.environ, "PYTHONPATH": str(hide), "CVLAB_CACHE": str(tmp_path / "cache")}
    env.pop(fast.FALLBACK_NOTICE_SHOWN, None)
    env.pop("CVLAB_FAST_LAYERS", None)
    script = Path(sys.executable).with_name("cvlab")
    result = subprocess.run(
        [str(script), "train", "-m", "model=fc", *TINY_DATA, "epochs=1", "seed=0,1,2",
         "launcher=joblib", f"outputs_root={tmp_path / 'outputs'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (result.stdout + result.stderr).count(NOTICE) == 1
