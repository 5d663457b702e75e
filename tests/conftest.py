"""Shared test helpers: the `cvlab` command run in process (fast) or as the installed script,
tiny synthetic-data overrides, run and sweep folders written like the trainers write them, the
real-CIFAR-10 skip marker. Test modules import helpers from here only, never from each other.

Markers (registered in pyproject.toml, --strict-markers): `slow` for longer runs on real data,
`numerics` for numerically sensitive tests, which `make test-portable` reruns under other BLAS
kernels and thread counts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("MPLBACKEND", "Agg")  # in-process `cvlab plot` on a machine without display

CVLAB = str(Path(sys.executable).with_name("cvlab"))

# Synthetic data small enough for an end-to-end numpy run in about a second.
TINY_DATA = [
    "dataset=synthetic", "dataset.synthetic_train=300", "dataset.synthetic_test=50",
    "dataset.num_train=100", "dataset.num_val=50", "dataset.num_test=50",
]


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


def stop_sweep_workers() -> None:
    """Stop joblib's reusable worker processes, as the end of a `cvlab` process would: they keep
    the working directory and environment they were started with, and the next in-process
    sweep must get its own."""
    executors = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(executors, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)


@pytest.fixture(scope="session")
def cvlab_cache(tmp_path_factory) -> Path:
    """One CVLAB_CACHE for the session's in-process runs (synthetic data generated once)."""
    return tmp_path_factory.mktemp("cvlab-cache")


@pytest.fixture
def cvlab(tmp_path, monkeypatch, capfd, cvlab_cache):
    """`cvlab(*args, cwd=None, env=None)` runs the CLI in this process from `cwd` (default
    tmp_path; outputs under cwd/outputs) and returns a Result. Output is captured at the
    file-descriptor level, so the lines of parallel sweep workers are included. CVLAB_CACHE is
    the session's cache unless `env` sets it."""
    from cvlab import cli

    def call(*args: str, env: dict | None = None, timeout: float | None = None,
             cwd: Path | None = None) -> Result:
        folder = tmp_path if cwd is None else Path(cwd)
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.chdir(folder)
        monkeypatch.setenv("CVLAB_CACHE", str(cvlab_cache))
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capfd.readouterr()
        try:
            code = cli.main(list(args))
        finally:
            stop_sweep_workers()
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
RUN_COLUMNS = ["train_acc", "val_acc", "lr", "elapsed_s"]


def model_config(**fields) -> dict:
    model = {"type": "fc_net", "hidden_dims": [50, 50], "normalization": "batchnorm",
             "dropout_keep_ratio": 1.0, "weight_scale": 0.01, "reg": 0.0, "dtype": "float32"}
    model.update(fields)
    return model


def make_run(run_dir: Path, *, model: dict | None = None, epochs: int = 3,
             iterations_per_epoch: int = 20, losses: list[float] | None = None,
             status: str = "completed", final_acc: float = 0.6, lr_decay: float = 1.0,
             **top) -> Path:
    """A run folder as `cvlab train` leaves it: config.yaml, metrics.csv, summary.json."""
    from cvlab.models.registry import spec_for
    from cvlab.records.metrics import MetricsLogger
    from cvlab.records.summary import write_summary
    from cvlab.train.core import final_loss_metrics

    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"model": model or model_config(),
              "dataset": {"name": "synthetic", "num_train": 1000, "num_val": 100},
              "optimizer": {"name": "adam", "learning_rate": 1e-3, "lr_decay": lr_decay},
              "device": {"name": "auto", "threads": None}, "experiment": None, "seed": 0,
              "epochs": epochs, "batch_size": 50, "baseline": False, "outputs_root": "outputs"}
    config.update(top)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    total = epochs * iterations_per_epoch
    if losses is None:
        losses = list(2.3 * np.exp(-np.arange(total) / total))
    lr = 1e-3
    with MetricsLogger(run_dir, RUN_COLUMNS) as logger:
        logger.log(iteration=0, epoch=0, train_acc=0.1, val_acc=0.1, lr=lr)
        for t, loss in enumerate(losses):
            logger.log(iteration=t, epoch=t // iterations_per_epoch, loss=loss, lr=lr)
            if (t + 1) % iterations_per_epoch == 0:
                epoch = (t + 1) // iterations_per_epoch
                acc = 0.1 + (final_acc - 0.1) * epoch / epochs
                logger.log(iteration=t + 1, epoch=epoch, train_acc=acc, val_acc=acc * 0.8,
                           lr=lr)
                lr *= lr_decay
    model_type = config["model"].get("type", "fc_net")
    write_summary(run_dir, status=status, command="train", family=spec_for(model_type).family.name,
                  model_type=model_type, dataset="synthetic", wall_time_s=1.5,
                  metrics={"best_val_acc": final_acc * 0.8, "best_train_acc": final_acc,
                           **final_loss_metrics([float(v) for v in losses])})
    return run_dir


def make_sweep(sweep_dir: Path, jobs: list[dict]) -> Path:
    """A Hydra multirun folder: multirun.yaml, job folders 0/, 1/, ..., the sweep summary."""
    from cvlab.records.sweeps import summarize_sweep

    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "multirun.yaml").write_text("hydra: {mode: MULTIRUN}\n")
    for index, job in enumerate(jobs):
        make_run(sweep_dir / str(index), **job)
    summarize_sweep(sweep_dir)
    return sweep_dir


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
    does (its preflight checks, then config.yaml); returns the RunSummary."""
    return _train_in


def _train_in(run_dir: Path, cfg):
    import dataclasses

    import yaml

    from cvlab.run.train import preflight, train

    preflight(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg)))
    return train(cfg, run_dir)


# ---- the console script as a process of its own (signals, kills) ---------------------------


def start(tmp_path: Path, *args: str) -> subprocess.Popen:
    """The console script in its own session (so that a signal to its group spares pytest)."""
    env = dict(os.environ, CVLAB_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg")
    return subprocess.Popen([CVLAB, *args, f"outputs_root={tmp_path / 'outputs'}"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    """Its output once it ended (killed, and the test failed, if it outlives `timeout`)."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"still running {timeout} s after the signal: {err}") from None


def wait_for(pattern: str, root: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list(root.rglob(pattern)):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {pattern} under {root}"
        time.sleep(0.1)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# ---- plug-ins written by a test: model types and families from folders of their own --------


@pytest.fixture
def plug_in(tmp_path, monkeypatch):
    """`plug_in(modules, options)` writes plug-in modules ({("models" | "families", name):
    source}) and model options ({option: YAML}) into tmp_path, where cvlab finds them as its
    own (the packages' search path, Hydra's search path); returns the overrides that point
    Hydra at the options. The model registry is copied and looked through again, and the
    modules are forgotten afterwards."""
    import textwrap

    import cvlab.families
    import cvlab.models
    from cvlab.models import registry

    registry.model_types()  # the built-in types, registered before the registry is copied
    written: list[str] = []

    def write(modules: dict, options: dict) -> list[str]:
        for (package, name), source in modules.items():
            (tmp_path / package).mkdir(exist_ok=True)
            (tmp_path / package / f"{name}.py").write_text(textwrap.dedent(source))
            owner = {"models": cvlab.models, "families": cvlab.families}[package]
            if str(tmp_path / package) not in owner.__path__:
                monkeypatch.setattr(owner, "__path__", [*owner.__path__, str(tmp_path / package)])
            written.append(f"cvlab.{package}.{name}")
        (tmp_path / "configs" / "model").mkdir(parents=True, exist_ok=True)
        for option, text in options.items():
            (tmp_path / "configs" / "model" / f"{option}.yaml").write_text(text)
        monkeypatch.setattr(registry, "_SPECS", dict(registry._SPECS))
        monkeypatch.setattr(registry, "_loaded", False)  # look for model modules again
        return [f"hydra.searchpath=[file://{tmp_path / 'configs'}]"]

    yield write
    for module in written:
        sys.modules.pop(module, None)
