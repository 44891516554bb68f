"""Test gates: points in a worker's work that a test holds closed, so it waits on events, not on time.

Off unless POSTERQ_TEST_GATE (Settings.test_gate) names a folder; off, a point costs one test of
an empty string. On, the work at a point waits while the file FOLDER/POINT exists (the gate is
closed), and creates FOLDER/POINT.reached when it finds it closed, so that a test knows some
work waits there:

    settings = settings.replace(test_gate=str(gates))
    (gates / "batch").touch()                           # closed
    ... wait until (gates / "batch.reached").exists()   # a batch has claimed its posters and waits
    (gates / "batch").unlink()                          # open: the batch classifies them

The points: BATCH, in a batch after it claimed its posters and before it classifies them
(posterq.worker.batching.run_batch); LISTING, in a directory job's listing after each committed chunk
(posterq.worker.enumeration). Never set it in production: a closed gate holds work until the batch's
time limit kills it.
"""

import time
from pathlib import Path

#: After a batch claimed its posters, before it classifies them.
BATCH = "batch"
#: After a directory job's listing committed a chunk (posterq.worker.enumeration.CHUNK files),
#: before the next.
LISTING = "listing"
#: Seconds between looks at a closed gate: a small share of any batch, nothing for the file system.
POLL = 0.02


def wait(folder: str, point: str) -> None:
    """Wait at `point` while the gate file folder/point exists; return at once when folder is empty."""
    if not folder:
        return
    gate = Path(folder) / point
    if not gate.exists():
        return
    (Path(folder) / f"{point}.reached").touch()
    while gate.exists():
        time.sleep(POLL)
