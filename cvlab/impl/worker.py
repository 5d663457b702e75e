"""The parent's side of an impl= worker: a child process (cvlab.impl.child) that runs the
student's code, started on first use and again after it died or ran out of time.

    worker = Worker(layout, log_path, memory_bytes=4 << 30, with_torch=False)
    result = worker.request({"op": "call", ...}, deadline=time.monotonic() + 60)
    worker.close()

A request that the user's code does not answer in time ends the worker: it is first asked for
its Python stack (SIGUSR1, faulthandler), then killed with its whole process group, and the
request raises ImplFailure("timed out") naming where their code was. A worker that dies (a
segfault or abort in their compiled code, os._exit) raises ImplFailure("crashed") with the
signal or exit code and the stack faulthandler wrote. What their code prints goes to the log
file. numpy's global RNG (and torch's, for a torch worker) travels with every request and
comes back as their code left it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.impl.course import Layout
from cvlab.impl.wire import decode, encode

STACK_WAIT_S = 0.5  # how long a worker that ran out of time gets to write its stack
FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<name>.+)$')
THREADS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class ImplFailure(Exception):
    """What the user's code did instead of answering: a verdict `kind` (not implemented,
    crashed, timed out, missing, wrong forward, wrong backward), one line, and the traceback
    trimmed to their frames."""

    def __init__(self, kind: str, detail: str, trace: str = "") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail, self.trace = kind, detail, trace


class Worker:
    """One child process running the user's code (see the module's docstring)."""

    def __init__(self, layout: Layout, log_path: Path, memory_bytes: int,
                 with_torch: bool = False) -> None:
        self.layout, self.log_path = layout, Path(log_path)
        self.memory_bytes, self.with_torch = int(memory_bytes), with_torch
        self.process: subprocess.Popen | None = None
        self.connection: Any = None
        self.generation = 0  # counts the processes started: handles of a dead one are void
        self.shared_rng: Any = None  # the RNG state the worker has too (not sent again)
        self._sent_rng: Any = None

    def _start(self) -> None:
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONUNBUFFERED="1", **dict.fromkeys(THREADS_ENV, "1"))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cvlab.impl.child", str(theirs.fileno()),
                 str(self.layout.folder), str(self.memory_bytes),
                 "1" if self.with_torch else "0"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                pass_fds=(theirs.fileno(),), start_new_session=True, cwd=self.layout.root)
        theirs.close()
        self.connection = Connection(ours.detach())
        self.generation += 1
        self.shared_rng = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def request(self, message: dict[str, Any], deadline: float) -> Any:
        """Send one request, wait for its answer until `deadline` (time.monotonic()); the
        result. ImplFailure for what the user's code did instead; RuntimeError for a fault of
        the worker itself."""
        if not self.alive:
            self._start()
        what = str(message.get("label") or message.get("name") or message.get("class")
                   or "importing your files")
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        message = {**message, **self._rng_to_send()}
        try:
            self.connection.send_bytes(encode(message))
            ready = self.connection.poll(max(0.0, deadline - time.monotonic()))
        except OSError:
            raise self._died(what, offset) from None
        if not ready:
            raise self._timed_out(what, offset)
        try:
            reply = decode(self.connection.recv_bytes())
        except (EOFError, OSError):
            raise self._died(what, offset) from None
        _set_rng_state(reply)
        changed = reply.get("rng") is not None or reply.get("torch_rng") is not None
        self.shared_rng = _rng_now(self.with_torch) if changed else self._sent_rng
        if reply.get("ok"):
            return reply["result"]
        if reply.get("kind") == "internal":
            raise RuntimeError(f"cvlab's impl worker failed:\n{reply.get('detail')}")
        raise ImplFailure(str(reply["kind"]), str(reply["detail"]), str(reply.get("traceback")))

    def _timed_out(self, what: str, offset: int) -> ImplFailure:
        """Ask for the stack, kill the process group; the failure naming where it was."""
        assert self.process is not None
        try:
            os.kill(self.process.pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
        time.sleep(STACK_WAIT_S)
        self._kill()
        return ImplFailure("timed out", f"{what} was still running",
                           self._stack(offset, "still running at (most recent call first):"))

    def _died(self, what: str, offset: int) -> ImplFailure:
        assert self.process is not None
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill()
            code = self.process.returncode
        how = (f"died of {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exited with code {code}")
        self._close_connection()
        return ImplFailure("crashed", f"the worker {how} while running {what}",
                           self._stack(offset, "the fatal error (most recent call first):"))

    def _stack(self, offset: int, title: str) -> str:
        """The frames in the user's folder of what faulthandler wrote after `offset`."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return ""
        lines = []
        for line in text.splitlines():
            if line.startswith("Fatal Python error"):
                lines.append(line)
            match = FRAME.match(line)
            if match and Path(match["file"]).resolve().is_relative_to(self.layout.root):
                lines.append(f'  File "{match["file"]}", line {match["line"]}, in '
                             f'{match["name"]}')
        return "\n".join([title, *lines]) if lines else ""

    def _kill(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        self._close_connection()

    def _close_connection(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def close(self) -> None:
        """End the worker (its socket closed: it returns; killed if it does not)."""
        if self.process is None:
            return
        self._close_connection()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._kill()
        self.process = None


    def _rng_to_send(self) -> dict[str, Any]:
        """numpy's (and for a torch worker torch's) RNG state where it differs from the one
        the worker has."""
        now = _rng_now(self.with_torch)
        self._sent_rng = now
        shared = self.shared_rng or {}
        return {key: value for key, value in now.items()
                if key not in shared or not _same(value, shared[key])}


def _rng_now(with_torch: bool) -> dict[str, Any]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {"rng": [keys, int(pos), int(has_gauss), float(cached)]}
    torch = sys.modules.get("torch")
    if with_torch and torch is not None:
        state["torch_rng"] = torch.get_rng_state().numpy()
    return state


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b)) \
        if isinstance(a, list) else a == b


def _set_rng_state(reply: dict[str, Any]) -> None:
    """numpy's (and torch's) global RNG as the user's code left it in the worker (sent only
    when it changed)."""
    if reply.get("rng") is not None:
        keys, pos, has_gauss, cached = reply["rng"]
        keys = np.asarray(keys)
        if keys.shape != (624,):
            raise RuntimeError("the impl worker sent a malformed RNG state")
        np.random.set_state(("MT19937", keys.astype(np.uint32), int(pos), int(has_gauss),
                             float(cached)))
    torch = sys.modules.get("torch")
    if torch is not None and reply.get("torch_rng") is not None:
        torch.set_rng_state(torch.from_numpy(np.asarray(reply["torch_rng"], dtype=np.uint8)))
