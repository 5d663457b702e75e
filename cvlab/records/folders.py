"""Where run folders are: new ones created exclusively, the folders of a command listed, the
newest with a given file found, and a sweep's job folders.

    run_dir = create_run_dir(default_run_parent(Path("outputs"), "train", multirun=False))
"""

from __future__ import annotations

import datetime
import errno
from pathlib import Path


def create_run_dir(parent: Path, name: str | None = None) -> Path:
    """Create a new, empty run folder `parent/<name>` and return it.

    `name` defaults to the current time with microseconds (H-M-S-ffffff). The folder is
    created exclusively: when it exists already (another run took it, whatever the clock
    says), `-1`, `-2`, ... is appended until a new folder is made. OSError (permission, full
    disk) propagates.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    name = name or datetime.datetime.now().strftime("%H-%M-%S-%f")
    for attempt in range(10_000):
        candidate = parent / (name if attempt == 0 else f"{name}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, "no free run folder name", str(parent / name))


def default_run_parent(outputs_root: Path, command: str, multirun: bool) -> Path:
    """outputs_root/<command>/<date>/ (multirun: outputs_root/<command>/multirun/<date>/)."""
    day = datetime.date.today().isoformat()
    root = Path(outputs_root) / command
    return (root / "multirun" / day) if multirun else (root / day)



def run_folders(outputs_root: Path, command: str = "train") -> list[tuple[Path, bool]]:
    """(folder, is_sweep) of every run and sweep of `command` under `outputs_root`, oldest
    first (by the date and time in their names)."""
    root = Path(outputs_root) / command
    found: list[tuple[tuple[str, str], Path, bool]] = []
    for multirun, days in ((False, root), (True, root / "multirun")):
        if not days.is_dir():
            continue
        for day in days.iterdir():
            if not day.is_dir() or day.name == "multirun":
                continue
            found += [((day.name, t.name), t, multirun) for t in day.iterdir() if t.is_dir()]
    return [(path, sweep) for _, path, sweep in sorted(found, key=lambda item: item[0])]


def latest_run_with(outputs_root: Path, filename: str, command: str = "train") -> Path | None:
    """The newest run folder (a single run or a sweep's job) that holds `filename`."""
    for folder, sweep in reversed(run_folders(outputs_root, command)):
        jobs = list(reversed(job_dirs(folder))) if sweep else [folder]
        for job in jobs:
            if (job / filename).is_file():
                return job
    return None


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep (numbered subfolders), in job order."""
    dirs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(dirs, key=lambda p: int(p.name))
