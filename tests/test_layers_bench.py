"""`cvlab bench layers quick=true`: the table, the CSV and the implementation it reports."""

from __future__ import annotations

import csv
import json

import pytest

from cvlab.config.commands import BenchConfig
from cvlab.errors import NotAvailableYet


def test_bench_layers_quick_writes_table_and_csv(cvlab, tmp_path):
    result = cvlab("bench", "layers", "quick=true", "repeats=1", "warmup=0",
                   f"outputs_root={tmp_path}/outputs")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    from cvlab.layers import implementation

    assert f"fast layers: {implementation()}" in result.stdout
    assert "threads: numpy" in result.stdout and "targets met" in result.stdout
    [summary_path] = (tmp_path / "outputs").rglob("summary.json")
    with (summary_path.parent / "bench_layers.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    benchmarks = {row["benchmark"] for row in rows}
    assert "conv backward naive/fast [course]" in benchmarks
    assert "conv fwd+bwd torch/fast [cnn]" in benchmarks
    assert "batchnorm backward graph/alt" in benchmarks
    assert {row["dtype"] for row in rows} == {"float32", "float64"}
    for row in rows:
        reference, candidate = float(row["reference_ms"]), float(row["candidate_ms"])
        assert reference > 0 and candidate > 0
        assert float(row["speedup"]) == pytest.approx(reference / candidate, rel=1e-2)
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "completed"
    details = summary["details"]
    assert details["implementation"] == implementation() and details["quick"] is True


def test_bench_train_is_dispatched_lazily(monkeypatch, tmp_path):
    from cvlab.commands import bench

    monkeypatch.setitem(bench.ACTIONS, "train", "cvlab.bench.no_such_module")
    with pytest.raises(NotAvailableYet, match="bench train"):
        bench.main(BenchConfig(action="train"), tmp_path)
