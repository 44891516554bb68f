"""posterq.gate: the test-only gate files that hold a worker's work at a known point."""

import threading
import time

from posterq import gate
from posterq.config import Settings


def _until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_off_by_default_and_open_without_its_file(tmp_path):
    assert Settings.from_env({}).test_gate == ""
    assert Settings.from_env({"POSTERQ_TEST_GATE": str(tmp_path)}).test_gate == str(tmp_path)
    gate.wait("", gate.BATCH)  # off: returns at once
    gate.wait(str(tmp_path), gate.BATCH)  # on, but open: returns at once, and says nothing
    assert list(tmp_path.iterdir()) == []


def test_a_closed_gate_holds_the_work_until_its_file_goes(tmp_path):
    (tmp_path / gate.LISTING).touch()
    passed = threading.Event()
    waiter = threading.Thread(target=lambda: (gate.wait(str(tmp_path), gate.LISTING), passed.set()))
    waiter.start()
    _until((tmp_path / f"{gate.LISTING}.reached").exists)
    assert not passed.is_set()  # it stands at the gate, told by the file it made
    gate.wait(str(tmp_path), gate.BATCH)  # another point's gate is open
    (tmp_path / gate.LISTING).unlink()
    waiter.join(timeout=60)
    assert passed.is_set() and not waiter.is_alive()
