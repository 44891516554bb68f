"""worker.runtime's pure parts: interpreter threads per process."""

import os

import pytest

from posterq.config import Settings
from worker.runtime import default_threads


def test_threads_fill_the_cores():
    assert default_threads(2, Settings(threads=0)) >= 1
    assert default_threads(1, Settings(threads=3)) == 3


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_threads_respect_cpu_affinity():
    # A worker pinned to one core (taskset, a CPU-limited container) must not start more threads.
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        assert default_threads(1, Settings()) == 1
    finally:
        os.sched_setaffinity(0, allowed)
