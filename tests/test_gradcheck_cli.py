"""`cvlab gradcheck` through the CLI (in process): tables, CSV, summary, exit codes 0/1/2."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def run_dirs(outputs: Path) -> list[Path]:
    return sorted(p.parent for p in outputs.rglob("summary.json"))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_gradcheck_conv_passes_with_a_table_and_csv(cvlab, tmp_path):
    result = cvlab("gradcheck", "layer=conv", f"outputs_root={tmp_path}/outputs")
    assert result.returncode == 0, result.stderr
    assert "gradcheck conv" in result.stdout and "PASS" in result.stdout
    assert "FAIL" not in result.stdout
    [run_dir] = run_dirs(tmp_path / "outputs")
    rows = read_csv(run_dir / "gradcheck.csv")
    assert [row["what"] for row in rows] == ["dx", "dw", "db"]
    assert all(row["layer"] == "conv" and row["passed"] == "True" for row in rows)
    assert all(row["metric"] == "norm" for row in rows)
    assert all(float(row["error"]) <= float(row["tolerance"]) / 10 for row in rows)
    assert all(float(row["rel_error"]) < 1e-5 for row in rows)  # the course's figure
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["metrics"]["checks"] == 3 and summary["metrics"]["failed"] == 0


def test_unknown_layer_lists_the_valid_names_and_exits_2(cvlab, tmp_path):
    result = cvlab("gradcheck", "layer=convv", f"outputs_root={tmp_path}/outputs")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "layer=convv" in message
    for name in ("all", "affine", "conv_fast", "spatial_groupnorm", "conv_bn_relu"):
        assert name in message


def check_broken_relu(rng):
    """ReLU with a deliberately wrong backward: the gradient is not masked."""
    from cvlab import layers as L
    from cvlab.checks import compare_gradients
    from cvlab.gradcheck import eval_numerical_gradient_array

    x = rng.randn(6, 7)
    dout = rng.randn(6, 7)
    wrong_dx = dout.copy()
    numeric = eval_numerical_gradient_array(lambda v: L.relu_forward(v)[0], x, dout)
    return [compare_gradients("dx", wrong_dx, numeric, 1e-8, "rel")]


def test_a_wrong_gradient_fails_the_check_and_exits_1(cvlab, tmp_path, monkeypatch):
    from cvlab import checks

    monkeypatch.setitem(checks._CHECKS, "broken_relu", check_broken_relu)  # a user's own check
    result = cvlab("gradcheck", "layer=broken_relu")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "1 of 1 gradient checks failed" in result.stdout
    [run_dir] = run_dirs(tmp_path / "outputs")
    rows = read_csv(run_dir / "gradcheck.csv")
    assert [(row["layer"], row["passed"]) for row in rows] == [("broken_relu", "False")]
    assert float(rows[0]["error"]) > 1e-3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["metrics"]["failed_layers"] == ["broken_relu"]


def test_a_crashing_check_is_a_failed_row_not_a_lost_run(tmp_path, monkeypatch, capsys):
    from cvlab import checks
    from cvlab.commands.gradcheck import main
    from cvlab.config.commands import GradcheckConfig

    def crashing(rng):
        raise RuntimeError("this layer is broken")

    monkeypatch.setitem(checks._CHECKS, "crashing", crashing)
    assert main(GradcheckConfig(layer="crashing"), tmp_path) == 1
    rows = read_csv(tmp_path / "gradcheck.csv")
    assert rows[0]["passed"] == "False" and "this layer is broken" in rows[0]["what"]
    assert main(GradcheckConfig(layer="relu"), tmp_path) == 0
    assert "PASS" in capsys.readouterr().out


def test_layer_all_selects_every_check_in_order():
    # every check passing with a 10x margin: test_layers_gradcheck, test_caption_layers and the
    # model tests (per check); `cvlab gradcheck` (all) runs in `make test-portable`
    from cvlab.checks import check_names
    from cvlab.commands.gradcheck import select_checks

    assert select_checks("all", check_names()) == check_names()
    assert len(check_names()) == 30
