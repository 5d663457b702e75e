"""Timing each framework in its own process, alternating, with the idle one's CPU use checked.

numpy's and PyTorch's thread pools slow each other when they share a process on few cores
(one pool's threads still spin, or hold a core, when the other's start). So each framework
gets a long-lived process of its own (`python -m cvlab.bench.isolated <framework> <threads>`)
that builds the closures to time (cvlab.bench.steps) and times them when told to; the parent
asks the processes in turn (A B, B A, A B, ...: each measurement, after a pause, of one
process while the others wait blocked on a pipe). During every measurement the parent reads,
from /proc, the CPU time the waiting processes used: `idle_cpu_share` is that over the
measurements' wall time, the proof that the other pool was idle (Linux only; None elsewhere).

Protocol: one JSON object per line. Parent -> child {"op": "setup", "case", "builder"
("module:function"), "kwargs", "warmup"} | {"op": "measure", "case", "calls"} | {"op": "exit"};
child -> parent {"once_s"} | {"seconds", "cpu_s"} | {"error"}.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

FRAMEWORKS = ("numpy", "torch")


class FrameworkProcess:
    """One framework's benchmark process, with `threads` threads for that framework."""

    def __init__(self, framework: str, threads: int) -> None:
        if framework not in FRAMEWORKS:
            raise ValueError(f"framework {framework!r} is not one of {FRAMEWORKS}")
        self.framework, self.threads = framework, threads
        env = dict(os.environ)
        if framework == "numpy":  # never an OpenMP pool in the numpy process
            env["OMP_NUM_THREADS"] = "1"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "cvlab.bench.isolated", framework, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    @property
    def pid(self) -> int:
        return self._process.pid

    def _ask(self, message: dict) -> dict:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.framework} benchmark process ended "
                               f"(exit code {self._process.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.framework} benchmark process: {reply['error']}")
        return reply

    def setup(self, case: str, builder: str, kwargs: dict, warmup: int) -> float:
        """Build the closure `case` = builder(**kwargs) there and call it `warmup` times (at
        least once); returns the seconds of one call. The numpy process must not have
        imported torch (its OpenMP pool would be there)."""
        reply = self._ask({"op": "setup", "case": case, "builder": builder, "kwargs": kwargs,
                           "warmup": warmup})
        if self.framework == "numpy" and reply["torch_loaded"]:
            raise RuntimeError(f"the numpy benchmark process imported torch ({builder})")
        return reply["once_s"]

    def measure(self, case: str, calls: int) -> tuple[float, float]:
        """(wall seconds per call, CPU seconds of the process per call) over `calls` calls."""
        reply = self._ask({"op": "measure", "case": case, "calls": calls})
        return reply["seconds"], reply["cpu_s"]

    def close(self) -> None:
        """Tell the process to exit (it also exits at the end of its input) and wait for it."""
        if self._process.poll() is None:
            try:
                assert self._process.stdin is not None
                self._process.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self._process.stdin.close()
            except OSError:
                pass
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None and not stream.closed:
                stream.close()

    def __enter__(self) -> FrameworkProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) the process has used so far, from /proc (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Case:
    """A closure to time in one framework's process."""

    label: str
    framework: str
    builder: str  # "module:function" of cvlab.bench.steps (or another module)
    kwargs: dict = field(default_factory=dict)


@dataclass
class Timing:
    """Measurements of one case: per-call wall seconds, per-call CPU seconds of its process
    and the cores it kept busy (CPU / wall)."""

    label: str
    framework: str
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cores(self) -> list[float]:
        return [cpu / wall if wall > 0 else 0.0 for wall, cpu in zip(self.seconds,
                                                                     self.cpu_seconds)]


@dataclass
class Alternation:
    timings: dict[str, Timing]
    idle_cpu_share: float | None  # CPU of the waiting processes / wall time of measurements


def alternate(cases: list[Case], threads: int, repeats: int, warmup: int,
              min_time_s: float = 0.2, pause_s: float = 0.1) -> Alternation:
    """Time every case `repeats` times, each framework in its own process, in alternating
    order (the order reversed every round); each measurement lasts about `min_time_s`."""
    frameworks = sorted({case.framework for case in cases}, key=FRAMEWORKS.index)
    processes = {name: FrameworkProcess(name, threads) for name in frameworks}
    try:
        calls = {}
        for case in cases:
            once = processes[case.framework].setup(case.label, case.builder, case.kwargs,
                                                   warmup)
            calls[case.label] = max(1, math.ceil(min_time_s / max(once, 1e-9)))
        timings = {case.label: Timing(case.label, case.framework) for case in cases}
        idle_cpu, measured_wall = 0.0, 0.0
        for round_ in range(repeats):
            for case in cases if round_ % 2 == 0 else cases[::-1]:
                time.sleep(pause_s)
                others = [p.pid for name, p in processes.items() if name != case.framework]
                before = [cpu_seconds(pid) for pid in others]
                start = time.perf_counter()
                seconds, cpu = processes[case.framework].measure(case.label, calls[case.label])
                measured_wall += time.perf_counter() - start
                after = [cpu_seconds(pid) for pid in others]
                if None in before or None in after:
                    idle_cpu = math.nan
                else:
                    idle_cpu += sum(a - b for a, b in zip(after, before))
                timings[case.label].seconds.append(seconds)
                timings[case.label].cpu_seconds.append(cpu)
    finally:
        for process in processes.values():
            process.close()
    share = None if math.isnan(idle_cpu) or len(processes) < 2 else idle_cpu / measured_wall
    return Alternation(timings, share)


# ---- the child ---------------------------------------------------------------------------------

def _set_threads(framework: str, threads: int) -> None:
    if framework == "numpy":
        from cvlab.layers import threads as layer_threads

        layer_threads.set_threads(threads)
    else:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        threadpool_limits(limits=1, user_api="blas")  # numpy's BLAS stays out of the way


def _serve(framework: str, threads: int) -> None:
    protocol, sys.stdout = sys.stdout, sys.stderr  # anything else printed goes to stderr
    _set_threads(framework, threads)
    closures = {}
    for line in sys.stdin:
        message = json.loads(line)
        try:
            if message["op"] == "exit":
                return
            if message["op"] == "setup":
                module, function = message["builder"].split(":")
                fn = getattr(importlib.import_module(module), function)(**message["kwargs"])
                closures[message["case"]] = fn
                start = time.perf_counter()
                for _ in range(max(1, message["warmup"])):
                    fn()
                reply = {"once_s": (time.perf_counter() - start) / max(1, message["warmup"]),
                         "torch_loaded": "torch" in sys.modules}
            else:
                fn, calls = closures[message["case"]], message["calls"]
                cpu, start = time.process_time(), time.perf_counter()
                for _ in range(calls):
                    fn()
                seconds = (time.perf_counter() - start) / calls
                reply = {"seconds": seconds, "cpu_s": (time.process_time() - cpu) / calls}
        except Exception:  # noqa: BLE001 - reported to the parent, which raises it
            reply = {"error": traceback.format_exc(limit=5)}
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
