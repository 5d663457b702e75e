"""A sweep's processes: which still run (a zombie does not), which this process started, and a
second signal that must not cut short the records of the first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from cvlab.records.processes import descendants, host_name, process_alive
from cvlab.train.signals import Interrupted, signals_as_interrupts


def test_a_child_is_a_descendant_and_alive_until_it_ends_even_unwaited():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert child.pid in descendants()
        assert process_alive(child.pid, host_name())
        child.kill()
        deadline = time.monotonic() + 10
        while process_alive(child.pid, host_name()):  # a zombie until waited for: ended
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert child.pid not in descendants()
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid, host_name())
    assert process_alive(child.pid, "another-host")  # taken at its word


def test_a_second_signal_is_recorded_while_the_first_is_handled():
    with signals_as_interrupts():
        with pytest.raises(Interrupted) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        assert caught.value.exit_code == 143
        os.kill(os.getpid(), signal.SIGINT)  # while the first one's records are written
        time.sleep(0.1)  # no exception: the handler only notes it
