"""The layers' threading policy: BLAS single-threaded under it, restored after use_threads,
work split between threads, errors reach the caller, results independent of the count."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from cvlab import layers as L
from cvlab.layers import threads

needs_blas_control = pytest.mark.skipif(
    not any(info["user_api"] == "blas" for info in threadpool_info()),
    reason="threadpoolctl does not know numpy's BLAS here")


def _numpy_blas_paths() -> set[str]:
    """The BLAS libraries numpy itself loads, seen from a fresh interpreter (later imports, such
    as scipy's own OpenBLAS, bring other BLAS libraries the layers never call)."""
    code = ("import numpy, threadpoolctl; print('\\n'.join(i['filepath'] for i in "
            "threadpoolctl.threadpool_info() if i['user_api'] == 'blas'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


_numpy_blas: list[set[str]] = []


def _blas_counts():
    if not _numpy_blas:
        _numpy_blas.append(_numpy_blas_paths())
    return [info["num_threads"] for info in threadpool_info()
            if info["user_api"] == "blas" and info["filepath"] in _numpy_blas[0]]


@needs_blas_control
def test_policy_pins_blas_to_one_thread_and_use_threads_restores_it():
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_counts()
        with L.use_threads(3) as count:
            assert count == 3
            assert set(_blas_counts()) == {1}
            assert threads.threads() == 3
        assert _blas_counts() == before
        assert threads.threads() == 1  # no policy outside the block


@needs_blas_control
def test_layers_never_add_threads_to_a_multithreaded_blas():
    with L.use_threads(2):
        with threadpool_limits(limits=2, user_api="blas"):  # someone raised BLAS again
            assert threads.threads() == 1
        assert threads.threads() == 2


def test_default_count_is_blas_threads_and_bad_counts_are_refused():
    with L.use_threads() as count:
        assert count >= 1
    with pytest.raises(ValueError, match="positive integer"):
        L.set_threads(0)


def test_for_each_runs_every_item_once_on_several_threads(monkeypatch):
    monkeypatch.setattr(threads, "threads", lambda: 3)
    seen, names = [], set()
    release = threading.Barrier(2, timeout=5)

    def work(i):
        if i < 2:  # the first two items wait for each other: they must run on two threads
            release.wait()
        seen.append(i)
        names.add(threading.current_thread().name)

    threads.for_each(50, work)
    assert sorted(seen) == list(range(50))
    assert len(names) >= 2


def test_an_error_in_an_item_reaches_the_caller_after_the_others_ran(monkeypatch):
    monkeypatch.setattr(threads, "threads", lambda: 2)
    done = []

    def work(i):
        if i == 3:
            raise RuntimeError("item 3 failed")
        done.append(i)

    with pytest.raises(RuntimeError, match="item 3 failed"):
        threads.for_each(8, work)
    assert sorted(done) == [0, 1, 2, 4, 5, 6, 7]


def test_nested_regions_run_in_the_calling_thread(monkeypatch):
    monkeypatch.setattr(threads, "_policy", [2])
    monkeypatch.setattr(threads, "blas_threads", lambda: 1)
    inner_counts = []

    def work(i):
        inner_counts.append(threads.threads())

    threads.for_each(4, work)
    assert inner_counts == [1, 1, 1, 1]


def test_split_covers_the_range():
    assert threads.split(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert threads.split(2, 5) == [(0, 1), (1, 2)]


@pytest.mark.parametrize("count", [1, 2, 3])
def test_model_gradients_are_bit_identical_for_any_thread_count(count):
    from cvlab.models import ThreeLayerConvNet

    def gradients(n):
        model = ThreeLayerConvNet(rng=np.random.RandomState(0), weight_scale=1e-2)
        X = np.random.RandomState(1).randn(12, 3, 32, 32).astype(np.float32)
        y = np.arange(12) % 10
        with L.use_threads(n):
            return model.loss(X, y)

    loss_1, grads_1 = gradients(1)
    loss_n, grads_n = gradients(count)
    assert loss_1 == loss_n
    for name in grads_1:
        np.testing.assert_array_equal(grads_1[name], grads_n[name])


def test_helpers_work_after_a_fork():
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    code = (
        "import os, numpy as np\n"
        "from cvlab.layers import threads\n"
        "threads.set_threads(2)\n"
        "threads.for_each(4, lambda i: None)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    out = []\n"
        "    threads.for_each(6, out.append)\n"
        "    os._exit(0 if sorted(out) == list(range(6)) else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "0"
