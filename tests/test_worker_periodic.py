"""posterq.worker.periodic: the thread behind the heartbeat and the sweep."""

import threading

from posterq.worker.periodic import Periodic


def test_the_first_call_comes_at_once_only_when_asked():
    called = threading.Event()
    eager = Periodic("eager", 3600, called.set, at_once=True)
    eager.start()
    assert called.wait(30)  # not an hour: the first call did not wait for the interval
    eager.stop()
    calls = []
    patient = Periodic("patient", 3600, lambda: calls.append(1))
    patient.start()
    patient.stop()
    assert calls == []


def test_a_call_that_raises_does_not_end_the_thread(caplog):
    calls, third = [], threading.Event()

    def call():
        calls.append(1)
        if len(calls) == 3:
            third.set()
        raise ConnectionError("Redis is restarting")

    periodic = Periodic("flaky", 0.01, call)
    periodic.start()
    try:
        assert third.wait(30)
    finally:
        periodic.stop()
    assert not periodic._thread.is_alive()  # stop() ends the thread
    assert "flaky failed" in caplog.text
