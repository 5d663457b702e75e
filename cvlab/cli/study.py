"""Continuing an Optuna search: its study (the sweep folder's database) is loaded, trials cut
off by an interrupt are closed as failed, and the search runs the trials still missing from
its n_trials, with a sampler seed of its own, in a new sweep folder.

    extra = continuation_overrides(sweep_dir, arguments)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvlab.cli.resume import hydra_quote
from cvlab.errors import UserError

STUDY_FILE = "optuna.db"


def continuation_overrides(sweep_dir: Path, arguments: list[str]) -> list[str]:
    """The overrides that continue the sweep's study: its storage, the trials still to run,
    a new sampler seed; UserError when the study cannot be continued."""
    from cvlab.config.compose import compose_plan

    sweeper = compose_plan("train", arguments, multirun=True).base.hydra.sweeper
    storage = f"sqlite:///{(sweep_dir / STUDY_FILE).resolve()}"
    if not (sweep_dir / STUDY_FILE).is_file():
        raise UserError(f"resume={sweep_dir}: no {STUDY_FILE} there (the search kept its study "
                        "elsewhere, or in memory); launch it again with hydra.sweeper.storage="
                        "<the study's database>")
    study = _load(storage, str(sweeper.study_name))
    failed = _close_cut_trials(study)
    done = sum(1 for trial in study.trials if trial.state.name == "COMPLETE")
    remaining = int(sweeper.n_trials) - done
    if remaining <= 0:
        raise UserError(f"resume={sweep_dir}: its study already holds {done} completed trials "
                        f"of {sweeper.n_trials}; raise hydra.sweeper.n_trials to search more")
    seed = int(sweeper.sampler.get("seed") or 0) + len(study.trials)
    print(f"resume={sweep_dir}: its study holds {done} completed trials of {sweeper.n_trials}"
          f"{f' ({failed} cut off by an interrupt, closed as failed)' if failed else ''}; "
          f"running {remaining} more (sampler seed {seed}) in a new sweep folder", flush=True)
    return [f"hydra.sweeper.storage={hydra_quote(storage)}",
            f"hydra.sweeper.n_trials={remaining}", f"hydra.sweeper.sampler.seed={seed}"]


def _load(storage: str, study_name: str) -> Any:
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except (KeyError, ValueError, RuntimeError) as err:
        raise UserError(f"cannot load the study {study_name!r} from {storage}: {err}") from None


def _close_cut_trials(study: Any) -> int:
    """Mark the trials left RUNNING by an interrupt as failed (the sweep's lock says no process
    runs them): they are run again as new trials, so that each point is in the study once."""
    from optuna.trial import TrialState

    cut = [trial for trial in study.trials if trial.state == TrialState.RUNNING]
    for trial in cut:
        study._storage.set_trial_state(trial._trial_id, TrialState.FAIL)
    return len(cut)
