"""Which process a record names, and whether it still runs: a run's summary and a sweep's lock
record the pid and host of the process that writes them; the processes this one started (a
sweep's launcher workers and jobs)."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any


def host_name() -> str:
    return socket.gethostname()


def process_alive(pid: Any, host: Any) -> bool:
    """Whether process `pid` of `host` still runs (a zombie, ended but not yet waited for by
    its parent, does not). A process of another host, or a record without a pid, is taken at
    its word (True): it cannot be asked from here."""
    if not isinstance(pid, int) or isinstance(pid, bool) or host != host_name():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):  # gone, or no pid a process has
        return False
    except PermissionError:
        return True
    return _proc_stat(pid)[:1] != ["Z"]


def _proc_stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...); [] where
    there is no /proc (not Linux) or the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text.rsplit(")", 1)[-1].split()


def descendants(pid: int | None = None) -> list[int]:
    """The processes started by `pid` (default: this one), and theirs, that have not ended;
    read from /proc ([] where there is none)."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                fields = _proc_stat(int(entry.name))
                if len(fields) > 1 and fields[0] != "Z":
                    children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], list(children.get(root, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack += children.get(child, [])
    return sorted(found)


def command_line(pid: int) -> str:
    """The command line of process `pid` ("" when it cannot be read)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
    except OSError:
        return ""
    return True
