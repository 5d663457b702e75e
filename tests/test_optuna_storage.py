"""hparams_search=bn_fc_optuna keeps its Optuna study in a database: by default an SQLite file
in the sweep folder; a later launch given that database (hydra.sweeper.storage) and the same
study name continues the study. Tiny synthetic data, a few one-epoch trials (in process; the
joblib jobs run in worker processes)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import TINY_DATA

optuna = pytest.importorskip("optuna")

STUDY = "bn_fc_optuna"  # the study_name configs/hparams_search/bn_fc_optuna.yaml sets
SEARCH = ["train", "hparams_search=bn_fc_optuna", *TINY_DATA, "epochs=1", "batch_size=25",
          "progress=false"]


def sweep_dirs(folder: Path) -> list[Path]:
    """The sweep folders under folder/outputs, oldest first (their names are start times)."""
    return sorted(p.parent for p in (folder / "outputs").rglob("sweep_summary.json"))


def load_trials(db: Path) -> list:
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{db}")
    return sorted(study.trials, key=lambda t: t.number)


def test_the_study_is_kept_in_the_sweep_folder(cvlab, tmp_path):
    result = cvlab(*SEARCH, "hydra.sweeper.n_trials=3")
    assert result.returncode == 0, result.stderr
    (folder,) = sweep_dirs(tmp_path)
    db = folder / "optuna.db"
    assert db.is_file()
    # the only database the search wrote: not one in the working folder, not one per job
    assert list(tmp_path.rglob("*.db")) == [db]
    trials = load_trials(db)
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # the trials are the jobs that ran: same parameters, the job's objective as value
    rows = json.loads((folder / "sweep_summary.json").read_text())
    assert len(rows) == 3 and all(r["status"] == "completed" for r in rows)
    ran = sorted((r["learning_rate"], r["weight_scale"], r["best_val_acc"]) for r in rows)
    stored = sorted((t.params["optimizer.learning_rate"], t.params["model.weight_scale"],
                     t.value) for t in trials)
    assert stored == ran  # the overrides and the summary carry the floats' exact repr


def test_a_second_launch_continues_the_study(cvlab, tmp_path):
    first = cvlab(*SEARCH, "hydra.sweeper.n_trials=2")
    assert first.returncode == 0, first.stderr
    (first_sweep,) = sweep_dirs(tmp_path)
    db = first_sweep / "optuna.db"
    before = load_trials(db)
    assert len(before) == 2

    # another seed, as the README says: the same seed would draw the same first points again
    second = cvlab(*SEARCH, "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.seed=1",
                   f"hydra.sweeper.storage=sqlite:///{db}")
    assert second.returncode == 0, second.stderr
    older, newer = sweep_dirs(tmp_path)
    assert older == first_sweep
    # the second launch's jobs are in its own folder; the study stays where it was
    assert sorted(p.name for p in newer.iterdir() if p.is_dir()) == ["0", "1"]
    assert not (newer / "optuna.db").exists()

    after = load_trials(db)
    assert [t.number for t in after] == [0, 1, 2, 3]  # n_trials more, not n_trials in all
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in after)
    for old, kept in zip(before, after[:2]):
        assert (kept.number, kept.params, kept.value) == (old.number, old.params, old.value)
    old_points = {tuple(sorted(t.params.items())) for t in before}
    assert all(tuple(sorted(t.params.items())) not in old_points for t in after[2:])
    rows = json.loads((newer / "sweep_summary.json").read_text())
    assert sorted(r["learning_rate"] for r in rows) == sorted(
        t.params["optimizer.learning_rate"] for t in after[2:])


@pytest.mark.slow
def test_an_interrupted_search_resumes_through_its_study_and_holds_each_trial_once(tmp_path,
                                                                                    cvlab):
    from conftest import finish, start, wait_for

    process = start(tmp_path, "train", "hparams_search=bn_fc_optuna", *TINY_DATA,
                    "epochs=60", "batch_size=25", "progress=false", "print_every=100000",
                    "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=1", "launcher=basic")
    wait_for("1/checkpoint.npz", tmp_path / "outputs", process)  # the second trial runs
    process.send_signal(signal.SIGINT)
    finish(process)
    (first,) = (tmp_path / "outputs").rglob("optuna.db")
    resumed = cvlab("train", f"resume={first.parent}", f"outputs_root={tmp_path / 'outputs'}")
    assert resumed.returncode == 0, resumed.stderr
    assert "its study holds 1 completed trials of 4 (1 cut off" in resumed.stdout
    study = optuna.load_study(study_name="bn_fc_optuna", storage=f"sqlite:///{first}")
    states = [trial.state.name for trial in study.trials]
    assert states.count("COMPLETE") == 4 and "RUNNING" not in states
    points = [tuple(sorted(trial.params.items())) for trial in study.trials
              if trial.state.name == "COMPLETE"]
    assert len(set(points)) == 4  # no point run twice
