"""`cvlab runs`: list, filter, sort, group, diff and the three formats, on run folders written
like the trainers write them (and a few that cannot be read), one tiny real sweep, and the
one-line refusals of bad arguments."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path

import pytest
from conftest import TINY_DATA, make_run, model_config

from cvlab.records.summary import write_summary

OLD = "train/2026-01-01/09-00-00-000000"
SWEEP = "train/multirun/2026-01-02/10-00-00-000000"
FAILED = "train/2026-01-03/11-00-00-000000"
CORRUPT = "train/2026-01-04/12-00-00-000000"
FOREIGN = "train/2026-01-04/12-00-00-000001"
TARGET = "train/2026-01-04/12-00-00-000002"
NEWEST_FIRST = [FAILED, f"{SWEEP}/2", f"{SWEEP}/1", f"{SWEEP}/0", OLD]
ACCURACY = {OLD: 0.30, f"{SWEEP}/0": 0.40, f"{SWEEP}/1": 0.50, f"{SWEEP}/2": 0.60, FAILED: 0.20}
LOSS = {OLD: 1.9, f"{SWEEP}/0": 1.5, f"{SWEEP}/1": 1.4, f"{SWEEP}/2": 1.3, FAILED: 2.0}


def write_run(root: Path, folder: str, *, seed: int, weight_scale: float, normalization: str,
              tags: list[str], status: str = "completed") -> None:
    """A run folder as cvlab train leaves it, with the metrics, settings and tags given."""
    run_dir = root / folder
    model = model_config(weight_scale=weight_scale, normalization=normalization)
    make_run(run_dir, model=model, status=status, seed=seed, tags=tags)
    write_summary(run_dir, tags=tags, settings={"seed": seed, "weight_scale": weight_scale,
                                                "normalization": normalization},
                  metrics={"best_val_acc": ACCURACY[folder], "final_loss_mean": LOSS[folder]})


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """Five readable runs (a single run, a sweep of three, a failed run) and three folders
    that cannot be read, written once for the module."""
    root = tmp_path_factory.mktemp("runs") / "outputs"
    write_run(root, OLD, seed=0, weight_scale=0.1, normalization="none", tags=["baseline"])
    for job in range(3):
        write_run(root, f"{SWEEP}/{job}", seed=job, weight_scale=0.01,
                  normalization="batchnorm", tags=["study"])
    write_run(root, FAILED, seed=11, weight_scale=0.1, normalization="none",
              tags=["baseline", "study"], status="failed")
    for folder in (CORRUPT, FOREIGN, TARGET):
        make_run(root / folder)
    (root / CORRUPT / "summary.json").write_text('{"status": "completed", "metr')
    foreign = json.loads((root / FOREIGN / "summary.json").read_text())
    (root / FOREIGN / "summary.json").write_text(json.dumps({**foreign,
                                                             "model_type": "../../etc"}))
    with (root / TARGET / "config.yaml").open("a") as config:
        config.write("callback:\n  _target_: os.system\n  command: echo hi\n")
    return root


@pytest.fixture
def outputs(written, tmp_path) -> Path:
    """A copy of those folders in tmp_path/outputs (where `cvlab runs` looks by default)."""
    return Path(shutil.copytree(written, tmp_path / "outputs"))


def as_json(result) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def folders(result) -> list[str]:
    return [row["folder"] for row in as_json(result)]


def one_line(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_lists_every_run_newest_first_and_the_unreadable_ones(cvlab, outputs):
    result = cvlab("runs")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    positions = [next(i for i, line in enumerate(lines) if folder in line)
                 for folder in NEWEST_FIRST]
    assert positions == sorted(positions)
    unreadable = [line for line in lines if line.startswith("unreadable ")]
    assert len(unreadable) == 3  # newest first too
    assert unreadable[0].startswith(f"unreadable {TARGET}: ") and "_target_" in unreadable[0]
    assert unreadable[1].startswith(f"unreadable {FOREIGN}: ")
    assert "model_type '../../etc' is not a name cvlab writes" in unreadable[1]
    assert unreadable[2].startswith(f"unreadable {CORRUPT}: ")
    assert "summary.json cannot be read (JSONDecodeError" in unreadable[2]
    assert lines[-1] == "5 listed; 5 readable runs under outputs, 3 unreadable"
    assert not (outputs.parent / "outputs" / "runs").exists()  # no run folder of its own


def test_a_row_holds_identity_settings_and_the_main_metric(cvlab, outputs):
    rows = as_json(cvlab("runs", "format=json"))
    first = rows[0]
    assert first["folder"] == FAILED and first["status"] == "failed"
    assert (first["family"], first["model_type"], first["tags"]) == ("numpy", "fc_net",
                                                                      ["baseline", "study"])
    assert (first["seed"], first["weight_scale"], first["normalization"]) == (11, 0.1, "none")
    assert (first["main_metric"], first["main_metric_value"]) == ("best_val_acc", 0.2)


@pytest.mark.parametrize("where, expected", [
    ("status:completed tag:study best_val_acc:ge:0.5", [f"{SWEEP}/2", f"{SWEEP}/1"]),
    ("tag:ne:study", [OLD]),
    ("tags:baseline", [FAILED, OLD]),
    ("seed:lt:10", [f"{SWEEP}/2", f"{SWEEP}/1", f"{SWEEP}/0", OLD]),  # numbers, not text
    ("model.weight_scale:0.1 model.normalization:ne:batchnorm", [FAILED, OLD]),
    ("optimizer.learning_rate:1e-3 seed:ne:1", [FAILED, f"{SWEEP}/2", f"{SWEEP}/0", OLD]),
    ("experiment:null status:failed", [FAILED]),
    ("'best_val_acc>0.45 model.weight_scale<=0.05'", [f"{SWEEP}/2", f"{SWEEP}/1"]),
])
def test_where_keeps_the_runs_for_which_every_term_holds(cvlab, outputs, where, expected):
    assert folders(cvlab("runs", f"where={where}", "format=json")) == expected


def test_sort_and_limit(cvlab, outputs):
    assert folders(cvlab("runs", "sort=-best_val_acc", "limit=2", "format=json")) == \
        [f"{SWEEP}/2", f"{SWEEP}/1"]
    assert folders(cvlab("runs", "sort=final_loss_mean", "format=json"))[:2] == \
        [f"{SWEEP}/2", f"{SWEEP}/1"]
    assert folders(cvlab("runs", "sort=model.normalization", "format=json")) == \
        [f"{SWEEP}/2", f"{SWEEP}/1", f"{SWEEP}/0", FAILED, OLD]  # ties stay newest first


def test_group_by_gives_mean_std_and_count_per_group(cvlab, outputs):
    groups = as_json(cvlab("runs", "group_by=model.normalization", "format=json"))
    assert [group["model.normalization"] for group in groups] == ["batchnorm", "none"]
    for group, members in zip(groups, ([f"{SWEEP}/{job}" for job in range(3)], [OLD, FAILED])):
        accuracies = [ACCURACY[folder] for folder in members]
        losses = [LOSS[folder] for folder in members]
        assert group["runs"] == group["best_val_acc_count"] == len(members)
        assert group["best_val_acc_mean"] == pytest.approx(statistics.mean(accuracies))
        assert group["best_val_acc_std"] == pytest.approx(statistics.stdev(accuracies))
        assert group["final_loss_mean_mean"] == pytest.approx(statistics.mean(losses))
        assert group["final_loss_mean_std"] == pytest.approx(statistics.stdev(losses))


def test_group_by_several_keys_with_chosen_metrics_sorted(cvlab, outputs):
    groups = as_json(cvlab("runs", "group_by=[model.weight_scale,status]",
                           "metrics=[best_val_acc]", "sort=-best_val_acc", "format=json"))
    assert [(g["model.weight_scale"], g["status"], g["runs"]) for g in groups] == \
        [(0.01, "completed", 3), (0.1, "completed", 1), (0.1, "failed", 1)]
    assert groups[1]["best_val_acc_mean"] == pytest.approx(0.30)
    assert groups[1]["best_val_acc_std"] is None  # one run: no sample deviation
    assert set(groups[0]) == {"model.weight_scale", "status", "runs", "best_val_acc_mean",
                              "best_val_acc_std", "best_val_acc_count"}


def test_a_group_table_names_its_groups(cvlab, outputs):
    result = cvlab("runs", "group_by=model.normalization", "where=status:completed")
    assert result.returncode == 0, result.stderr
    assert "batchnorm" in result.stdout and "best_val_acc_mean" in result.stdout
    assert "2 groups of 4 runs; 4 of 5 readable runs match where under outputs, 3 " \
           "unreadable" in result.stdout


def test_diff_lists_the_config_keys_that_differ(cvlab, outputs):
    rows = as_json(cvlab("runs", f"diff=[{SWEEP}/0,{SWEEP}/1]", "format=json"))
    assert rows == [{"key": "seed", "first": 0, "second": 1}]
    rows = as_json(cvlab("runs", f"diff=[{outputs / OLD},{SWEEP}/2]", "format=json"))
    assert {row["key"]: (row["first"], row["second"]) for row in rows} == {
        "model.normalization": ("none", "batchnorm"), "model.weight_scale": (0.1, 0.01),
        "seed": (0, 2), "tags": ("[baseline]", "[study]")}
    table = cvlab("runs", f"diff=[{SWEEP}/0,{SWEEP}/0]")
    assert table.stdout.strip() == f"the configs of {SWEEP}/0 and {SWEEP}/0 are the same"


def test_csv_and_json_leave_stdout_to_the_data(cvlab, outputs):
    result = cvlab("runs", "format=csv", "where=status:completed")
    assert result.returncode == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["folder"] for row in rows] == NEWEST_FIRST[1:]
    assert rows[0]["tags"] == "[study]" and rows[0]["main_metric_value"] == "0.6"
    assert "3 unreadable" in result.stderr and "unreadable " + CORRUPT in result.stderr
    result = cvlab("runs", "format=json", "group_by=status")
    assert [row["status"] for row in json.loads(result.stdout)] == ["completed", "failed"]


def test_an_empty_outputs_root_lists_nothing(cvlab, tmp_path):
    result = cvlab("runs", f"outputs_root={tmp_path / 'nothing'}")
    assert result.returncode == 0 and result.stdout.startswith("no runs")
    assert as_json(cvlab("runs", "format=json", "outputs_root=nothing")) == []


def test_the_config_cache_never_outranks_the_files(cvlab, outputs):
    assert folders(cvlab("runs", "where=model.weight_scale:0.1", "format=json")) == \
        [FAILED, OLD]
    config = outputs / OLD / "config.yaml"
    config.write_text(config.read_text().replace("weight_scale: 0.1", "weight_scale: 0.5"))
    assert folders(cvlab("runs", "where=model.weight_scale:0.1", "format=json")) == [FAILED]
    config.write_text(config.read_text() + "hook:\n  _target_: os.system\n")
    result = cvlab("runs", "format=json")
    assert OLD not in [row["folder"] for row in json.loads(result.stdout)]
    assert f"unreadable {OLD}: " in result.stderr and "4 unreadable" in result.stderr


def test_a_running_summary_with_a_pid_no_system_has_reads_as_stopped(cvlab, outputs):
    import socket

    summary = outputs / OLD / "summary.json"
    data = json.loads(summary.read_text())
    summary.write_text(json.dumps({**data, "status": "running", "pid": 2**70,
                                   "host": socket.gethostname()}))
    result = cvlab("runs", "format=json")
    assert result.returncode == 0 and OLD in folders(result)
    (row,) = [row for row in json.loads(result.stdout) if row["folder"] == OLD]
    assert row["status"] == "stopped"  # no process has that pid: it runs no more


def test_configs_parsed_on_several_cores_read_the_same(cvlab, outputs, monkeypatch):
    from cvlab.commands import runs_index

    serial = cvlab("runs", "format=csv", "sort=model.weight_scale")
    cache = Path(runs_index.ConfigCache(outputs).path)
    cache.unlink()
    monkeypatch.setattr(runs_index, "PARALLEL_FROM", 1)  # a pool of worker processes
    parallel = cvlab("runs", "format=csv", "sort=model.weight_scale")
    assert parallel.returncode == 0 and parallel.stdout == serial.stdout
    assert parallel.stderr == serial.stderr and cache.is_file()


@pytest.mark.parametrize("args, expected", [
    (["where=best_val_ac:gt:1"], "unknown key 'best_val_ac' in where (did you mean "
                                 "best_val_acc?); keys: a summary field (folder, tag, status"),
    (["where=best_val_acc:gte:1"], "unknown operator 'gte'; write key:value or key:op:value "
                                   "with op one of eq, ne, lt, le, gt, ge"),
    (["where='best_val_acc=>0.3'"], "unknown operator '=>'"),
    (["where=completed"], "where term 'completed' is not a condition"),
    (["where=tag:gt:a"], "tag takes : (has the tag) or :ne: (has not)"),
    (["sort=-best_val_ac"], "unknown key 'best_val_ac' in sort (did you mean best_val_acc?)"),
    (["group_by=model.normalisation"], "in group_by (did you mean model.normalization?)"),
    (["group_by=status", "metrics=[family]"], "metrics: family is not a number"),
    (["group_by=status", "sort=seed"], "with group_by, sort by a group key, runs or a metric"),
    ([f"diff=[{SWEEP},{OLD}]"], f"diff: {SWEEP} is not a run folder (a sweep folder: pass one "
                                "of its jobs"),
    ([f"diff=[{OLD},nowhere]"], "diff: nowhere is not a run folder"),
    ([f"diff=[{OLD},{TARGET}]"], "names an object to instantiate"),
    ([f"diff={OLD}"], "is not allowed: two run folders, diff=[<run>,<run>]"),
    ([f"diff=[{OLD},{FAILED}]", "limit=3"], "on their own (without where, sort"),
    (["format=xml"], "format='xml' is not allowed: one of table, csv, json"),
    (["limit=0"], "limit=0 is not allowed: an integer > 0"),
    (["sortt=x"], "unknown key 'sortt' (did you mean sort?)"),
])
def test_bad_arguments_get_one_line_and_exit_2(cvlab, outputs, args, expected):
    line = one_line(cvlab("runs", *args))
    assert line.startswith("cvlab runs: ") and expected in line, line


def test_help_shows_the_query_keys(cvlab):
    result = cvlab("runs", "--help")
    assert result.returncode == 0
    assert "where: []" in result.stdout and "group_by: []" in result.stdout


def test_runs_really_trained_by_a_sweep_are_grouped(cvlab, tmp_path):
    trained = cvlab("train", "-m", "seed=0,1", *TINY_DATA, "model=bn_fc", "epochs=1",
                    "launcher=basic", "progress=false", "tags=[tiny,seeds]")
    assert trained.returncode == 0, trained.stderr
    rows = as_json(cvlab("runs", "where=tag:seeds", "format=json"))
    assert [row["seed"] for row in rows] == [1, 0] and rows[0]["tags"] == ["tiny", "seeds"]
    groups = as_json(cvlab("runs", "group_by=model.normalization", "format=json"))
    accuracies = [row["main_metric_value"] for row in rows]
    assert [(g["model.normalization"], g["runs"]) for g in groups] == [("batchnorm", 2)]
    assert groups[0]["best_val_acc_mean"] == pytest.approx(statistics.mean(accuracies))
    assert groups[0]["best_val_acc_std"] == pytest.approx(statistics.stdev(accuracies))
    sweep = rows[0]["folder"].rsplit("/", 1)[0]
    diff = as_json(cvlab("runs", f"diff=[{sweep}/0,{sweep}/1]", "format=json"))
    assert diff == [{"key": "seed", "first": 0, "second": 1}]
