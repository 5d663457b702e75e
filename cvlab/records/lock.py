"""The lock of a sweep folder: which process is running the sweep now.

    acquire(sweep_dir)     # UserError when a live process holds it; a stale lock is replaced
    release(sweep_dir)

The lock is a small file in the folder (.cvlab.lock: the holder's pid and host). A process that
died without releasing it leaves a stale lock, which the next acquire on the same host replaces
(a lock from another host is taken at its word: say so, and how to remove it).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from cvlab.errors import UserError
from cvlab.records.processes import host_name, process_alive

LOCK_NAME = ".cvlab.lock"


def holder(folder: Path) -> tuple[int, str] | None:
    """(pid, host) of the process holding the folder's lock, None when there is no lock or
    its holder is gone (a process of this host that no longer runs)."""
    try:
        data = json.loads((Path(folder) / LOCK_NAME).read_text())
        pid, host = int(data["pid"]), str(data["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (pid, host) if process_alive(pid, host) else None


def acquire(folder: Path) -> None:
    """Hold the folder's lock; UserError (one line) when another live process holds it."""
    path = Path(folder) / LOCK_NAME
    held = holder(folder)
    if held is not None and held != (os.getpid(), host_name()):
        raise UserError(f"{folder} is in use by process {held[0]} on {held[1]} (a sweep still "
                        f"running); wait for it or stop it (if that process is gone, remove "
                        f"{path})")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a stale lock
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(handle, "w") as lock:
        json.dump({"pid": os.getpid(), "host": host_name()}, lock)


def release(folder: Path) -> None:
    """Give the lock up (when this process holds it)."""
    path = Path(folder) / LOCK_NAME
    if holder(folder) == (os.getpid(), host_name()):
        with contextlib.suppress(OSError):
            path.unlink()
