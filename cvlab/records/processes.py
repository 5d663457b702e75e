"""Which process a record names, and whether it still runs: a run's summary and a sweep's lock
record the pid and host of the process that writes them."""

from __future__ import annotations

import os
import socket
from typing import Any


def host_name() -> str:
    return socket.gethostname()


def process_alive(pid: Any, host: Any) -> bool:
    """Whether process `pid` of `host` still runs. A process of another host, or a record
    without a pid, is taken at its word (True): it cannot be asked from here."""
    if not isinstance(pid, int) or isinstance(pid, bool) or host != host_name():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):  # gone, or no pid a process has
        return False
    except PermissionError:
        return True
    return True
