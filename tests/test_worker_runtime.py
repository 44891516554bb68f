"""posterq.worker.runtime's pure parts: interpreter threads per process."""

import os

import pytest

from posterq.config import Settings
from posterq.worker import runtime
from posterq.worker.runtime import default_threads


@pytest.mark.parametrize("cores, processes, threads", [
    (8, 1, 8), (8, 2, 4), (8, 3, 2), (8, 8, 1), (8, 16, 1),  # processes x threads <= cores, at least one
    (4, 0, 4),  # no pool size known: the process has the cores to itself
])
def test_threads_fill_the_cores(monkeypatch, cores, processes, threads):
    monkeypatch.setattr(runtime, "available_cores", lambda: cores)
    assert default_threads(processes, Settings(threads=0)) == threads


def test_a_configured_thread_count_wins():
    assert default_threads(1, Settings(threads=3)) == 3
    assert default_threads(64, Settings(threads=3)) == 3


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_threads_respect_cpu_affinity():
    # A worker pinned to one core (taskset, a CPU-limited container) must not start more threads.
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        assert default_threads(1, Settings()) == 1
    finally:
        os.sched_setaffinity(0, allowed)


@pytest.mark.parametrize("given, node, shown", [
    ("new-1", "celery@new-1", "new-1"),  # Celery's prefix of a bare name goes
    ("posterq@gpu-box", "posterq@gpu-box", "posterq@gpu-box"),  # name@host stays whole
    ("celery@kept", "celery@kept", "celery@kept"),  # given with its "celery@": kept
    ("", "celery@other", "celery@other"),  # started by `celery` itself: Celery's name
])
def test_a_worker_is_shown_by_the_name_it_was_given(monkeypatch, given, node, shown):
    monkeypatch.setitem(runtime._given, "name", given)
    assert runtime.shown_name(node) == shown
