"""Shared test helpers: the `cvlab` command run in process (fast) or as the installed script."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

CVLAB = str(Path(sys.executable).with_name("cvlab"))


@dataclass
class Result:
    """What a `cvlab` call left: its exit code and everything written to stdout / stderr."""

    returncode: int
    stdout: str
    stderr: str


def run_cvlab(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None):
    """Run the installed console script `cvlab args...` from `cwd` (a subprocess)."""
    full_env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore::DeprecationWarning")
    full_env.update(env or {})
    return subprocess.run(
        [CVLAB, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )


@pytest.fixture
def cvlab(tmp_path, monkeypatch, capfd):
    """`cvlab(*args)` runs the CLI in this process from tmp_path (outputs under tmp_path/outputs)
    and returns a Result. Output is captured at the file-descriptor level, so the lines of
    parallel sweep workers are included."""
    from cvlab import cli

    def call(*args: str, env: dict | None = None, timeout: float | None = None) -> Result:
        monkeypatch.chdir(tmp_path)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capfd.readouterr()
        code = cli.main(list(args))
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = capfd.readouterr()
        return Result(int(code), out, err)

    return call


@pytest.fixture
def cvlab_script(tmp_path):
    """`cvlab_script(*args)` runs the installed console script in tmp_path (a subprocess)."""

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


@pytest.fixture
def http_folder(tmp_path):
    """A local HTTP server (127.0.0.1, an ephemeral port) for the folder tmp_path/www, as a
    download site for fetch tests (torchvision's downloader needs http). Yields (www, url)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    www = tmp_path / "www"
    www.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def train_in():
    """`train_in(run_dir, cfg)` trains a validated TrainConfig in `run_dir` as `cvlab train`
    does (config.yaml first); returns the RunSummary."""
    return _train_in


def _train_in(run_dir: Path, cfg):
    import dataclasses

    import yaml

    from cvlab.train.run import train

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg)))
    return train(cfg, run_dir)
