"""Packaging: the sdist ships the Cython sources, configs and licence; a wheel built from it holds
the compiled extension; without a C compiler the install succeeds with the numpy fallback; a
non-editable install finds its configs from an unrelated working directory.

Builds run without build isolation, with the venv's setuptools, Cython and numpy (the Makefile
installs them), so nothing is downloaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYX_SOURCES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "cvlab/ext").glob("*.pyx"))
CONFIGS = sorted(p.relative_to(REPO / "configs").as_posix()
                 for p in (REPO / "configs").rglob("*.yaml"))
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
FALLBACK_WARNING = "WARNING: cvlab's compiled fast layers (cvlab.ext) were not built"


def pip(*args: str, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check"],
        capture_output=True, text=True, timeout=600, env=env, cwd=cwd,
    )


def run_from(folder: Path, site: Path, *args: str, env: dict | None = None):
    """Run `args` from `folder` with only the install in `site` on top of the venv."""
    folder.mkdir(exist_ok=True)
    full_env = dict(os.environ, PYTHONPATH=str(site), MPLBACKEND="Agg", **(env or {}))
    return subprocess.run(list(args), cwd=folder, env=full_env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    """The source distribution, built by setuptools' PEP 517 hook (as `python -m build`)."""
    out = tmp_path_factory.mktemp("sdist")
    result = subprocess.run(
        [sys.executable, "-c",
         f"from setuptools import build_meta; print(build_meta.build_sdist({str(out)!r}))"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def wheel(sdist, tmp_path_factory) -> Path:
    """A wheel built from the sdist (so from the .pyx sources, compiled here)."""
    out = tmp_path_factory.mktemp("wheel")
    # unoptimized C compiles 3x faster; what is tested is that the extension is built
    result = pip("wheel", "-w", str(out), str(sdist), cwd=out,
                 env=dict(os.environ, CVLAB_EXT_OPT="-O0"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    (built,) = out.glob("cvlab-*.whl")
    return built


def test_sdist_ships_pyx_configs_and_licence_but_no_build_outputs(sdist):
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        pkg_info = archive.extractfile(f"{sdist.name.removesuffix('.tar.gz')}/PKG-INFO").read()
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"cvlab-0.1.0"}
    files = {name.split("/", 1)[1] for name in names if "/" in name}
    assert PYX_SOURCES == ["cvlab/ext/fused.pyx", "cvlab/ext/im2col.pyx", "cvlab/ext/maxpool.pyx",
                           "cvlab/ext/update.pyx"]
    assert set(PYX_SOURCES) <= files
    assert {"configs/" + name for name in CONFIGS} <= files
    assert {"LICENSE", "README.md", "pyproject.toml", "setup.py"} <= files
    built = [f for f in files if f.endswith((".so", ".pyd", ".c", ".o", ".pyc"))]
    assert built == []  # generated C or modules would be stale or foreign; setup.py builds them
    unwanted = [f for f in files
                if f.split("/")[0] in {"outputs", "multirun", "build", "dist", ".venv", "tests"}]
    assert unwanted == []
    metadata = pkg_info.decode()
    assert "License-Expression: MIT" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any("numpy" in line for line in requires)
    assert not any("cython" in line.lower() for line in requires)


def test_cython_is_a_build_requirement_only():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert any(r.lower().startswith("cython") for r in project["build-system"]["requires"])
    runtime = project["project"]["dependencies"]
    assert not any(r.lower().startswith("cython") for r in runtime)
    licence = (REPO / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "cvlab authors" in licence


@pytest.mark.slow
def test_wheel_from_sdist_holds_the_compiled_extension_and_configs(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for module in ("im2col", "maxpool"):
        assert f"cvlab/ext/{module}{EXT_SUFFIX}" in names
    assert {"cvlab/configs/" + name for name in CONFIGS} <= names
    assert "cvlab-0.1.0.dist-info/licenses/LICENSE" in names
    assert not [n for n in names if n.endswith((".c", ".pyx"))]
    site = tmp_path / "site"
    assert pip("install", "--target", str(site), str(wheel)).returncode == 0
    probe = run_from(tmp_path / "elsewhere", site, sys.executable, "-c",
                     "import cvlab.ext.im2col as m, cvlab.layers.fast as f;"
                     "print(m.__file__); print(f.implementation())")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [str(site / "cvlab/ext" / f"im2col{EXT_SUFFIX}"), "cython"]


@pytest.mark.slow
def test_install_without_a_c_compiler_warns_once_and_uses_the_numpy_fallback(sdist, tmp_path):
    empty_bin = tmp_path / "bin-without-compilers"
    empty_bin.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"CC", "CXX", "LDSHARED"}}
    env.update(PATH=str(empty_bin), CC=str(empty_bin / "cc"))  # no gcc, no cc, anywhere
    site = tmp_path / "site"
    result = pip("install", "-v", "--target", str(site), str(sdist), env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    warnings = [line.strip() for line in output.splitlines() if FALLBACK_WARNING in line]
    assert len(warnings) == 1, output[-3000:]
    assert "No such file or directory" in warnings[0]
    assert "numpy fallback" in warnings[0] and "install a C compiler" in warnings[0]
    assert not list((site / "cvlab/ext").glob("*" + EXT_SUFFIX))
    bench = run_from(tmp_path / "elsewhere", site, str(site / "bin/cvlab"), "bench", "layers",
                     "quick=true", "repeats=1", "warmup=0")
    assert bench.returncode == 0, bench.stderr[-3000:]
    assert "fast layers: numpy (numpy fallback)" in bench.stdout
    (csv,) = (tmp_path / "elsewhere/outputs").rglob("bench_layers.csv")
    assert csv.read_text().count("\n") > 5


@pytest.mark.slow
def test_non_editable_install_runs_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    install = pip("install", "--target", str(site), str(wheel))
    assert install.returncode == 0, install.stderr[-2000:]
    assert (site / "cvlab" / "configs" / "train.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    probe = run_from(elsewhere, site, sys.executable, "-c",
                     "import cvlab, cvlab.paths; print(cvlab.__file__);"
                     "print(cvlab.paths.config_dir())")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines() == [
        str(site / "cvlab" / "__init__.py"), str(site / "cvlab" / "configs")
    ]
    result = run_from(elsewhere, site, sys.executable, "-m", "cvlab.cli", "train", "--help")
    assert result.returncode == 0, result.stderr
    assert "model: " in result.stdout and "bn_fc" in result.stdout
