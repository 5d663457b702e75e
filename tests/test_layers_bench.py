"""`cvlab bench layers|train quick=true`: tables, CSVs with named ratio directions, where the CSV
went, and each framework timed in its own process."""

from __future__ import annotations

import csv
import json
import sys

import pytest

from cvlab.bench import isolated
from cvlab.bench.isolated import Case, FrameworkProcess, alternate


def _run_folder(tmp_path):
    [summary_path] = (tmp_path / "outputs").rglob("summary.json")
    return summary_path.parent, json.loads(summary_path.read_text())


def test_bench_layers_quick_writes_table_and_csv(cvlab, tmp_path):
    result = cvlab("bench", "layers", "quick=true", "repeats=1", "warmup=0")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    from cvlab.layers import implementation

    assert f"fast layers: {implementation()}" in result.stdout
    assert "targets met" in result.stdout and "reference / candidate" in result.stdout
    run, summary = _run_folder(tmp_path)
    assert f"rows in {run / 'bench_layers.csv'}" in result.stdout.replace("\n", "")
    with (run / "bench_layers.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    benchmarks = {row["benchmark"] for row in rows}
    assert "conv backward naive/fast [course]" in benchmarks
    assert "conv fwd+bwd torch/fast [cnn]" in benchmarks
    assert "conv-relu-pool fwd+bwd, no dx, torch/fused [cnn]" in benchmarks
    assert "batchnorm backward graph/alt" in benchmarks
    assert {row["dtype"] for row in rows} == {"float32", "float64"}
    for row in rows:
        reference, candidate = float(row["reference_ms"]), float(row["candidate_ms"])
        assert reference > 0 and candidate > 0
        assert float(row["reference_over_candidate"]) == pytest.approx(reference / candidate,
                                                                       rel=1e-2)
        # numpy against PyTorch: separate processes; numpy against numpy: one
        assert row["processes"] == ("separate" if row["reference"] == "torch" else "one")
        if row["target"]:
            met = float(row["reference_over_candidate"]) >= float(row["target"].split()[-1])
            assert row["met"] == ("yes" if met else "no")
    assert summary["status"] == "completed"
    details = summary["details"]
    assert details["implementation"] == implementation() and details["quick"] is True


def test_bench_train_quick_reports_both_frameworks_and_the_ratio(cvlab, tmp_path):
    result = cvlab("bench", "train", "quick=true", "repeats=2", "warmup=1", "threads=1")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    run, summary = _run_folder(tmp_path)
    out = result.stdout.replace("\n", " ")
    assert "torch time / numpy time" in out and "numpy speed relative to PyTorch" in out
    assert f"rows in {run / 'bench_train.csv'}" in result.stdout.replace("\n", "")
    assert "load average" in out
    with (run / "bench_train.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    numpy_row, torch_row, challenge_row = rows
    assert (numpy_row["framework"], torch_row["framework"]) == ("numpy", "pytorch cpu")
    assert challenge_row["model"].startswith("ChallengeNet")
    ratio = float(torch_row["torch_time_over_numpy_time"])
    assert ratio == pytest.approx(float(torch_row["step_ms"]) / float(numpy_row["step_ms"]),
                                  rel=1e-2)
    assert float(torch_row["paired_min"]) <= float(torch_row["paired_max"])
    for row in rows:
        assert float(row["images_per_s"]) == pytest.approx(
            int(row["batch_size"]) * 1000 / float(row["step_ms"]), rel=1e-2)
        assert float(row["step_ms_min"]) <= float(row["step_ms"]) <= float(row["step_ms_max"])
        assert float(row["cpu_ms"]) >= 0 and float(row["cores_used"]) >= 0
    metrics = summary["metrics"]
    assert metrics["torch_time_over_numpy_time"] == ratio
    assert metrics["numpy_images_per_s"] == float(numpy_row["images_per_s"])
    assert set(summary["details"]["load_average"]) == {"start", "end"}
    if sys.platform.startswith("linux"):  # /proc: the waiting process was idle
        assert metrics["idle_process_cpu_share"] < 0.2


def test_frameworks_run_in_processes_of_their_own(monkeypatch):
    with FrameworkProcess("numpy", 1) as numpy_process:
        numpy_process.setup("step", "cvlab.bench.steps:numpy_train_step",
                            {"batch_size": 2, "input_dim": [3, 8, 8], "num_filters": 2,
                             "hidden_dim": 4}, warmup=1)  # raises if it imported torch
        seconds, cpu = numpy_process.measure("step", 3)
        assert seconds > 0 and cpu >= 0
        assert isolated.cpu_seconds(numpy_process.pid) is not None or sys.platform != "linux"
        # a numpy process that reports torch among its modules is refused
        monkeypatch.setattr(numpy_process, "_ask", lambda message: {"once_s": 0.1,
                                                                    "torch_loaded": True})
        with pytest.raises(RuntimeError, match="imported torch"):
            numpy_process.setup("x", "cvlab.bench.steps:torch_train_step", {}, warmup=1)


def test_errors_in_a_benchmark_process_reach_the_parent():
    with FrameworkProcess("numpy", 1) as process, pytest.raises(RuntimeError,
                                                                match="no_such_builder"):
        process.setup("x", "cvlab.bench.steps:no_such_builder", {}, warmup=0)
    with pytest.raises(ValueError, match="framework"):
        FrameworkProcess("jax", 1)


def test_alternation_reverses_the_order_every_round(monkeypatch):
    order = []

    class Recorder:
        def __init__(self, framework, threads):
            self.framework, self.pid = framework, 0

        def setup(self, case, builder, kwargs, warmup):
            return 0.01

        def measure(self, case, calls):
            order.append(case)
            return 0.01, 0.01

        def close(self):
            pass

    monkeypatch.setattr(isolated, "FrameworkProcess", Recorder)
    monkeypatch.setattr(isolated, "cpu_seconds", lambda pid: 1.0)
    result = alternate([Case("a", "numpy", "m:f"), Case("b", "torch", "m:f")], threads=1,
                       repeats=3, warmup=0, pause_s=0)
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert result.idle_cpu_share == 0.0
    assert result.timings["a"].seconds == [0.01] * 3
