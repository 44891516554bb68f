"""Hostile files through the real service: each gets a result or a stable code, no worker dies, and the
worker's peak memory stays bounded (the image decoder's budget, posterq.imaging.MAX_DECODE_BYTES)."""

import os
from pathlib import Path

import pytest
from harness import eventually
from hostile import hostile_files
from samples import poster_bytes

pytestmark = pytest.mark.hostile_files
MIB = 1 << 20
#: The issue's bound for a worker on any input. The tiny test model leaves more of it to decoding
#: than the shipped one does, so the decoding's own share is asserted too.
WORKER_PEAK_RSS_MB = 500
DECODE_SHARE_MB = 250


def _tree(pid: int) -> list[int]:
    # The worker's main process and its pool children (recursively), from /proc.
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").iterdir():
            children = (task / "children").read_text().split()
            todo.extend(int(child) for child in children)
    return found


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for process {pid}")


@pytest.fixture(scope="module")
def corpus():
    """The hostile kinds, built once."""
    return hostile_files()


def test_every_hostile_file_gets_a_result_or_a_stable_code_within_bounded_memory(
        corpus, service_settings, data_root, spawn_worker_with, make_api):
    assert len(corpus) >= 30
    settings = service_settings.replace(max_file_bytes=20 * MIB, max_request_bytes=64 * MIB,
                                        max_posters_per_job=100, batch_size=2)
    folder = data_root / "hostile"
    folder.mkdir()
    for name, kind in corpus.items():
        (folder / f"{name}{kind.suffix}").write_bytes(kind.data)
    worker = spawn_worker_with("hostile@test", settings)
    # Each process's memory once the model is loaded and has run: decoding's share is counted from here.
    api = make_api(settings)
    warm = api.post("/jobs", files=[("files", ("warm.png", corpus["png_one_pixel"].data))])
    api.wait(warm.json()["id"], timeout=60)
    before = {pid: _status_mb(pid, "VmRSS") for pid in _tree(worker.process.pid)}

    directory = api.post("/jobs", json={"directory": str(folder)})
    files = [("files", (f"{name}{kind.suffix}", kind.data)) for name, kind in corpus.items()]
    uploads = api.post("/jobs", files=files)
    assert directory.status_code == uploads.status_code == 202, (directory.text, uploads.text)
    for response in (directory, uploads):
        job = api.wait(response.json()["id"], timeout=240)
        assert job["status"] == "done" and job["total"] == len(corpus)
        outcomes = {Path(row["name"]).stem: row["status"] if row["status"] == "ok" else row["error"]["code"]
                    for row in job["results"]}
        unexpected = {name: got for name, got in outcomes.items() if got not in corpus[name].outcomes}
        assert not unexpected, unexpected
        assert {row["worker"] for row in job["results"]} == {"hostile@test"}

    assert worker.process.poll() is None, worker.log()
    pids = _tree(worker.process.pid)
    assert set(pids) == set(before), "a pool process died and was replaced"
    assert worker.store.stats.read().get("redeliveries", 0) == 0
    peaks = {pid: _status_mb(pid, "VmHWM") for pid in pids}
    assert max(peaks.values()) < WORKER_PEAK_RSS_MB, peaks
    assert max(peaks[pid] - before[pid] for pid in pids) < DECODE_SHARE_MB, (peaks, before)
    print(f"worker peak RSS {max(peaks.values()):.0f} MB, decoding added at most "
          f"{max(peaks[pid] - before[pid] for pid in pids):.0f} MB ({os.cpu_count()} cores)")


def test_a_pipe_in_a_data_root_fails_alone_and_at_once(api, spawn_worker, data_root, store):
    folder = data_root / "with-a-pipe"
    folder.mkdir()
    (folder / "a.png").write_bytes(poster_bytes(7, "PNG"))
    os.mkfifo(folder / "b.jpg")  # nothing will ever write to it
    spawn_worker("pipe@test")
    job = api.wait(api.post("/jobs", json={"directory": str(folder)}).json()["id"], timeout=300)
    outcomes = {row["name"]: row["status"] if row["status"] == "ok" else row["error"]["code"]
                for row in job["results"]}
    assert outcomes == {"a.png": "ok", "b.jpg": "unreadable"}
    # At once, told by events rather than a clock: the batch never blocked on the pipe until its
    # time limit killed the worker (a killed batch is delivered again).
    # A batch counts itself just after its results are written (which may be what finished the job).
    eventually(lambda: store.stats.read().get("batches", 0) >= 1, "the batch counted")
    stats = store.stats.read()
    assert stats.get("redeliveries", 0) == 0, stats

