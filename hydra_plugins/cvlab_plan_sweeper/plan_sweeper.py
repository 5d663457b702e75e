"""cvlab's plan sweeper, a Hydra sweeper plugin (Hydra loads sweepers from the hydra_plugins
namespace package): the sweeper for work whose jobs are listed in advance (a sweep's
expanded points, a reproduction's runs), launched on the launcher the config names.

    hydra/sweeper=cvlab_plan hydra.sweeper.plan=<folder>/sweep_plan.json hydra.sweeper.jobs=[..]

cvlab composes and checks every job before the launch (cvlab.config.compose) and writes the plan
(cvlab.records.plan); this sweeper reads it and launches the listed jobs, each with its own
overrides, into the folder named after its number (<sweep folder>/<number>). A job keeps its
number and folder whichever of the plan's jobs are launched together: a resumed sweep launches
only those still to run. Hydra's basic sweeper cannot: it numbers the jobs it launches from 0.
"""


from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from cvlab.records.plan import read_plan


@dataclass
class PlanSweeperConf:
    _target_: str = "hydra_plugins.cvlab_plan_sweeper.plan_sweeper.PlanSweeper"
    plan: str = ""  # the plan file (sweep_plan.json)
    jobs: list[int] = field(default_factory=list)  # the planned jobs to launch
    params: dict[str, str] | None = None  # a sweep config's points (expanded into the plan)


class PlanSweeper(Sweeper):
    """Launches the planned jobs `jobs` of the plan file `plan` in one batch."""

    def __init__(self, plan: str, jobs: list[int], params: dict[str, str] | None = None) -> None:
        super().__init__()
        self.plan_path, self.numbers = Path(plan), list(jobs)
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        """Launch the listed jobs (the command line's `arguments` are in the plan already)."""
        plan = read_plan(self.plan_path.parent)
        if plan is None:
            raise ValueError(f"no plan at {self.plan_path}")
        batch = []
        for number in self.numbers:
            job = plan.job(number)
            if job is None:
                raise ValueError(f"{self.plan_path} has no job {number}")
            batch.append([*job.overrides, f"hydra.sweep.subdir={number}"])
        return self.launcher.launch(batch, initial_job_idx=0) if batch else []


def register() -> None:
    """Make `hydra/sweeper=cvlab_plan` a choice of Hydra's sweeper group, and the class a known
    plugin (cvlab.cli does, before it composes a sweep: an editable install's namespace
    package is not always found by Hydra's own plugin scan)."""
    ConfigStore.instance().store(group="hydra/sweeper", name="cvlab_plan", node=PlanSweeperConf,
                                 provider="cvlab")
    Plugins.instance().register(PlanSweeper)
