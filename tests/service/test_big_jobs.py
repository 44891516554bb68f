"""Directory jobs of any size: listed in the background from a cursor, a window of them in Redis,
exactly one row per file in PostgreSQL, through a worker SIGKILL, an API kill and a Redis restart.

The listing's own steps are called in this process (as a worker's task does) where a test needs
to stop them at a chosen point; the end-to-end test runs real workers, a real gunicorn API and a
private redis-server over a folder of 200,000 files (hard links of one small poster, so that the
tiny model's classification does not dominate).
"""

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
import redis
import requests
from harness import RedisServer, is_final, wait_for_job
from samples import poster_bytes

from posterq import gate
from posterq.files import iter_files
from posterq.jobs.broker import tokens_for
from posterq.jobs.keys import JobStatus, Keys
from posterq.jobs.store import JobStore
from posterq.worker.enumeration import CHUNK, enumerate_folder

pytestmark = pytest.mark.big_jobs
MIB = 1 << 20
LINKS_PER_FILE = 50_000


def _linked_folder(folder: Path, count: int, per_folder: int = 1000) -> list[str]:
    """count hard links of one poster in subfolders of per_folder; their names in listing order."""
    for n in range(count):
        if n % LINKS_PER_FILE == 0:  # a file takes at most 65,000 links on ext4
            source = folder.parent / f"{folder.name}-source-{n}.jpg"
            source.write_bytes(poster_bytes(7))
        sub = folder / f"part-{n // per_folder:04d}"
        if n % per_folder == 0:
            sub.mkdir(parents=True)
        os.link(source, sub / f"poster-{n:07d}.jpg")
    return [f"part-{n // per_folder:04d}/poster-{n:07d}.jpg" for n in range(count)]


def _rows(database, job_id: str) -> dict:
    # What the ledger holds for a job, counted by PostgreSQL itself (200,000 rows are not paged here):
    # its items, and those without a result row (pending).
    with database.transaction() as tx:
        count, distinct, pending, first, last = tx.execute(
            "SELECT count(*), count(DISTINCT items.idx), count(*) FILTER (WHERE results.idx IS NULL), "
            "min(items.idx), max(items.idx) FROM posterq_items AS items LEFT JOIN posterq_results AS results "
            "ON results.job_id = items.job_id AND results.idx = items.idx WHERE items.job_id = %s",
            (job_id,)).fetchone()
        names = hashlib.sha256()
        query = "SELECT name FROM posterq_items WHERE job_id = %s ORDER BY idx"
        for (name,) in tx.stream(query, (job_id,)):
            names.update(name.encode() + b"\n")
    return {"rows": count, "distinct": distinct, "pending": pending, "first": first, "last": last,
            "names": names.hexdigest()}


def _digest(names: list[str]) -> str:
    return hashlib.sha256("".join(f"{name}\n" for name in names).encode()).hexdigest()


def test_a_listing_resumes_after_its_last_chunk_and_lists_nothing_twice(store, data_root, database):
    # Room for the whole folder: with the default limit (10,000 queued) and no worker draining, the
    # listing would pause at the limit (admission, tests/service/test_admission.py).
    store = JobStore(store.client, store.settings.replace(max_queued_posters=3 * CHUNK), store.database)
    folder = data_root / "resume"
    names = _linked_folder(folder, 2 * CHUNK + 7, per_folder=3000)
    job = store.jobs.create_directory(str(folder), True)
    assert (job["status"], job["total"], job["enumerated"]) == ("queued", 0, False)
    sent = []
    # A slice of no time stops after one chunk, as a listing killed after its commit would.
    first = enumerate_folder(store, job["id"], sent.append, seconds=0)
    assert (first.found, first.more) == (CHUNK, True)
    # Another listing of the same job while this one holds the lock does nothing.
    keys = Keys(store.settings.key_prefix)
    store.client.set(keys.enumerating(job["id"]), "someone else", ex=60)
    assert enumerate_folder(store, job["id"], sent.append).skipped
    store.client.delete(keys.enumerating(job["id"]))
    # A listing that lost the race for a chunk (it started from a count that moved on) writes nothing.
    assert not store.ledger.add_found(job["id"], 0, [{"name": "again.jpg", "path": "x"}], "again.jpg")
    second = enumerate_folder(store, job["id"], sent.append, seconds=0)
    last = enumerate_folder(store, job["id"], sent.append)
    assert (second.found, last.found, last.finished) == (CHUNK, 7, True)
    view = store.jobs.get(job["id"])
    assert (view["total"], view["enumerated"], view["status"]) == (len(names), True, "queued")
    assert _rows(database, job["id"]) == {"rows": len(names), "distinct": len(names), "pending": len(names),
                                          "first": 0, "last": len(names) - 1, "names": _digest(names)}
    # The same files in the same order as `posterq label` lists them.
    assert names == [path.relative_to(folder).as_posix() for path in iter_files(folder)]
    # Redis holds the window, not the folder: its refs, items and the tokens for them.
    window = store.settings.job_window
    assert store.client.llen(keys.ready(job["id"])) == store.client.hlen(keys.items(job["id"])) == window
    assert store.fair_queue.depth() == window
    assert sum(sent) == tokens_for(window, store.settings.batch_size)
    assert enumerate_folder(store, job["id"], sent.append).skipped  # listed: nothing more to do


def test_the_window_is_topped_up_as_workers_drain_it(store, data_root):
    folder = data_root / "window"
    _linked_folder(folder, 100)
    job_id = store.jobs.create_directory(str(folder), True)["id"]
    enumerate_folder(store, job_id, lambda tokens: None)
    window, batch = store.settings.job_window, store.settings.batch_size
    claimed = 0
    while claimed < 100:
        refs, items, _ = store.claims.claim(f"task-{claimed}", batch, 0)
        assert refs, f"nothing ready after {claimed} posters"
        store.claims.write_results([(job_id, item["index"], {"error": None}, "ok") for item in items], {})
        store.claims.finish(f"task-{claimed}")
        claimed += len(refs)
        assert store.fair_queue.depth() <= window  # never more than the window in Redis
        store.window.top_up(job_id)
    assert store.jobs.get(job_id)["status"] == JobStatus.DONE.value and store.fair_queue.depth() == 0


def test_a_folder_that_cannot_be_listed_fails_alone(store, data_root, monkeypatch):
    # Root may read any folder, so the failure to list one is made at os.scandir, for one folder.
    folder = data_root / "unlistable"
    _linked_folder(folder, 6, per_folder=2)
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: real(path) if not str(path).endswith("part-0001")
                        else (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    job_id = store.jobs.create_directory(str(folder), True)["id"]
    assert enumerate_folder(store, job_id, lambda tokens: None).finished
    rows = store.jobs.results(job_id)
    assert [(row["name"], row["status"]) for row in rows] == [
        ("part-0000/poster-0000000.jpg", "pending"), ("part-0000/poster-0000001.jpg", "pending"),
        ("part-0001", "error"), ("part-0002/poster-0000004.jpg", "pending"),
        ("part-0002/poster-0000005.jpg", "pending")]
    assert rows[2]["error"] == {"code": "unreadable",
                                "message": "the folder could not be listed: Permission denied"}
    assert (store.jobs.get(job_id)["total"], store.jobs.get(job_id)["failed"]) == (5, 1)


def test_a_name_that_is_not_utf8_is_one_row_labelled_like_any_other(api, spawn_worker, data_root):
    spawn_worker("names@test")
    # Incident 4 of issue 23 as it was: a folder holding one file whose name is not UTF-8.
    lonely = data_root / "one-bad-name"
    lonely.mkdir()
    Path(os.fsdecode(os.fsencode(lonely) + b"/bad\xff\xfename.jpg")).write_bytes(poster_bytes(3))
    # And beside other files: a text file with such a name, and a subfolder with such a name.
    mixed = data_root / "mixed-names"
    (mixed / os.fsdecode(b"sub\xe9")).mkdir(parents=True)
    (mixed / "good.jpg").write_bytes(poster_bytes(4))
    (mixed / os.fsdecode(b"notes\xfe.jpg")).write_text("not a poster")
    (mixed / os.fsdecode(b"sub\xe9") / "inner.jpg").write_bytes(poster_bytes(5))
    (mixed / os.fsdecode(b"bytes:%FF.jpg")).write_bytes(poster_bytes(6))  # looks like the escaped form
    lonely_id = api.post("/jobs", json={"directory": str(lonely)}).json()["id"]
    mixed_id = api.post("/jobs", json={"directory": str(mixed)}).json()["id"]
    job = wait_for_job(api.url, lonely_id, timeout=120)
    assert (job["status"], job["total"], job["done"]) == ("done", 1, 1), job
    assert [(row["name"], row["status"]) for row in job["results"]] == [("bad\\xff\\xfename.jpg", "ok")]
    job = wait_for_job(api.url, mixed_id, timeout=120)
    assert (job["status"], job["total"], job["done"], job["failed"]) == ("done", 4, 3, 1), job
    rows = {row["name"]: row for row in job["results"]}
    assert sorted(rows) == ["bytes:%FF.jpg", "good.jpg", "notes\\xfe.jpg", "sub\\xe9/inner.jpg"]
    assert rows["notes\\xfe.jpg"]["error"]["code"] == "not_an_image"  # opened and read: a text file
    assert all(rows[name]["status"] == "ok" for name in ("bytes:%FF.jpg", "good.jpg", "sub\\xe9/inner.jpg"))
    csv_text = api.get(f"/jobs/{mixed_id}/results", params={"format": "csv"}).text
    assert "\nnotes\\xfe.jpg,,not_an_image," in csv_text and "\nsub\\xe9/inner.jpg," in csv_text
    jsonl = api.get(f"/jobs/{mixed_id}/results", params={"format": "jsonl"}).text
    assert '"path": "notes\\\\xfe.jpg"' in jsonl


def test_a_listing_error_that_does_not_pass_ends_the_job_after_bounded_tries(store, data_root, monkeypatch):
    # An error that is not the store's (down or full) may never pass: here os.scandir raises one
    # that walk_files does not expect, as the database's UnicodeEncodeError did in issue 23.
    folder = data_root / "never-listed"
    _linked_folder(folder, 3)
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: real(path) if not str(path).endswith("never-listed")
                        else (_ for _ in ()).throw(RuntimeError("a listing that never works")))
    job_id = store.jobs.create_directory(str(folder), True)["id"]
    tries = store.settings.max_redeliveries + 1
    for _ in range(tries - 1):  # each raises: the task tries again later
        with pytest.raises(RuntimeError):
            enumerate_folder(store, job_id, lambda tokens: None)
    report = enumerate_folder(store, job_id, lambda tokens: None)
    assert report.failed and report.finished
    job = store.jobs.get(job_id)
    assert (job["status"], job["total"], job["failed"], job["enumerated"]) == ("failed", 1, 1, True)
    [row] = store.jobs.results(job_id)
    assert row["error"]["code"] == "listing_failed" and f"({tries} tries)" in row["error"]["message"]
    assert "a listing that never works" in row["error"]["message"]
    assert enumerate_folder(store, job_id, lambda tokens: None).skipped  # nothing tries again
    keys = Keys(store.settings.key_prefix)
    assert store.client.lrange(keys.done(job_id), 0, -1) == [b"failed"]  # its waiters woke
    assert not store.client.exists(keys.enumerating(job_id))


def test_a_listing_that_gives_up_after_some_posters_fails_the_job_not_done(store, data_root, monkeypatch):
    # Half a folder labelled must never read as a done job: the listing's error is the job's own.
    import posterq.worker.enumeration

    folder = data_root / "half-listed"
    _linked_folder(folder, 6, per_folder=3)  # part-0000 (3 files), then part-0001, which breaks
    monkeypatch.setattr(posterq.worker.enumeration, "CHUNK", 3)
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: real(path) if not str(path).endswith("part-0001")
                        else (_ for _ in ()).throw(RuntimeError("a disk that went away")))
    job_id = store.jobs.create_directory(str(folder), True)["id"]
    assert enumerate_folder(store, job_id, lambda tokens: None, seconds=0).found == 3
    batch = store.claims.claim("drain", 3, 0)[0]
    store.ledger.write([(job, index, {"genres": ["Drama"], "scores": {}}, "ok") for job, index in batch],
                       {"version": "test"}, time.time())
    for _ in range(store.settings.max_redeliveries):
        with pytest.raises(RuntimeError):
            enumerate_folder(store, job_id, lambda tokens: None)
    assert enumerate_folder(store, job_id, lambda tokens: None).failed
    job = store.jobs.get(job_id)
    assert (job["status"], job["done"], job["failed"], job["total"]) == ("failed", 3, 1, 4)
    assert job["error"]["code"] == "listing_failed" and "a disk that went away" in job["error"]["message"]
    assert "after part-0000/" in job["error"]["message"]


def test_a_folder_swapped_for_a_link_after_submit_is_not_read(store, data_root):
    # The API checked the folder it resolved (against the key's own data roots, which workers do
    # not have); a link swapped in later leads elsewhere, so the listing reads nothing there.
    mine, theirs = data_root / "swapped", data_root / "another-teams"
    _linked_folder(mine, 2)
    _linked_folder(theirs, 3)
    job_id = store.jobs.create_directory(str(mine), True)["id"]
    mine.rename(data_root / "swapped-away")
    mine.symlink_to(theirs, target_is_directory=True)
    assert enumerate_folder(store, job_id, lambda tokens: None).finished
    [row] = store.jobs.results(job_id)
    assert row["error"]["code"] == "unreadable" and "is a link now" in row["error"]["message"]
    assert store.jobs.get(job_id)["status"] == "failed"


def test_a_cancel_stops_the_listing(store, data_root, database):
    folder = data_root / "cancelled"
    _linked_folder(folder, CHUNK + 10)
    job_id = store.jobs.create_directory(str(folder), True)["id"]
    assert enumerate_folder(store, job_id, lambda tokens: None, seconds=0).found == CHUNK
    store.jobs.cancel(job_id)
    assert enumerate_folder(store, job_id, lambda tokens: None).found == 0
    assert _rows(database, job_id)["rows"] == CHUNK and store.fair_queue.depth() == 0


def test_an_empty_or_vanished_folder_is_a_clear_answer(api, data_root):
    empty = data_root / "empty-folder"
    (empty / ".hidden").mkdir(parents=True)
    response = api.post("/jobs", json={"directory": str(empty)})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "no_posters")


class _Peak(threading.Thread):
    """Samples a reading every interval until stopped; keeps the highest."""

    def __init__(self, read, interval: float = 0.2):
        super().__init__(daemon=True)
        self.read, self.interval, self.peak, self._done = read, interval, 0, threading.Event()

    def run(self):
        while not self._done.wait(self.interval):
            try:
                self.peak = max(self.peak, self.read())
            except Exception:  # Redis restarting: no reading this time
                pass

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def _wait_until_done(api, job_id: str, posters: int) -> dict:
    return wait_for_job(api.url, job_id, until=lambda job: job["done"] >= posters, timeout=600, ride_out=True,
                        limit=1, interval=0.5)


def _rss(pid: int) -> int:
    """The resident memory of a process and its children (gunicorn's master and its worker)."""
    total = 0
    for child in [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]:
        with open(f"/proc/{child}/status") as status:
            total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    return total


#: What the 200,000-file test holds Redis to, above its memory before the job: the window's refs and
#: items, the tokens, batches and counters (docs/service.md gives the measured figure).
REDIS_BOUND = 32 * MIB
FILES = 200_000


def test_a_200000_file_folder_is_one_job_through_kills_and_a_restart(
        tmp_path, data_root, service_settings, database, spawn_worker_with, serve_api):
    redis_server = RedisServer(tmp_path / "redis-data", "--appendonly", "yes", "--maxmemory-policy",
                               "noeviction").start()
    try:
        _run_big_job(data_root, service_settings, database, spawn_worker_with, serve_api, redis_server,
                     tmp_path / "gates")
    finally:
        redis_server.stop()


def _run_big_job(data_root, service_settings, database, spawn_worker_with, serve_api, redis_server, gates):
    # Reuse off: the files are links of one poster, and each must be classified for the kills and
    # the restart to meet batches in flight (posterq.jobs.reuse would classify it once).
    settings = service_settings.replace(redis_url=redis_server.url, batch_size=200, job_window=2000,
                                        batch_time_limit=10, sweep_interval=0.5, visibility_timeout=20,
                                        reuse_results=False)
    folder = data_root / "two-hundred-thousand"
    names = _linked_folder(folder, FILES)
    client = redis.Redis.from_url(redis_server.url)
    baseline = client.info("memory")["used_memory"]
    redis_peak = _Peak(lambda: client.info("memory")["used_memory"])
    redis_peak.start()
    # The first worker's listing stops after its first chunk at a closed gate (posterq.gate), so that
    # the API is killed mid-listing on any machine, however fast.
    gates.mkdir()
    (gates / gate.LISTING).touch()
    worker = spawn_worker_with("big-a@test", settings.replace(test_gate=str(gates)), concurrency=2)
    api = serve_api(settings)
    response = requests.post(f"{api.url}/jobs", json={"directory": str(folder)}, timeout=30)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    # Answered before the folder was listed: a 200,000-file folder costs the POST one directory entry.
    assert (response.json()["total"], response.json()["enumerated"]) == (0, False)
    # The API is killed while the folder is being listed; another one takes over.
    deadline = time.monotonic() + 120
    while not (gates / f"{gate.LISTING}.reached").exists():
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.05)
    listing = requests.get(f"{api.url}/jobs/{job_id}", timeout=30).json()
    assert (listing["total"], listing["enumerated"]) == (CHUNK, False), listing
    api.kill()
    (gates / gate.LISTING).unlink()  # the listing goes on with no API up
    api = serve_api(settings)
    _wait_until_done(api, job_id, 20_000)
    worker.kill()  # SIGKILL, mid-batch: its batches come back to the others
    spawn_worker_with("big-b@test", settings, concurrency=2)
    _wait_until_done(api, job_id, 60_000)
    redis_server.shutdown()
    time.sleep(1)
    redis_server.start()
    job = wait_for_job(api.url, job_id, until=is_final, timeout=900, ride_out=True, interval=1, limit=1)
    peak = redis_peak.stop()
    assert (job["status"], job["total"], job["done"], job["failed"]) == ("done", FILES, FILES, 0), job
    assert _rows(database, job_id) == {"rows": FILES, "distinct": FILES, "pending": 0, "first": 0,
                                       "last": FILES - 1, "names": _digest(names)}
    assert peak - baseline < REDIS_BOUND, f"Redis grew by {(peak - baseline) / MIB:.1f} MiB"
    # The download streams: 200,000 rows leave the API without it holding them.
    before = _rss(api.pid)
    api_peak = _Peak(lambda: _rss(api.pid), interval=0.05)
    api_peak.start()
    with requests.get(f"{api.url}/jobs/{job_id}/results", params={"format": "csv"}, stream=True,
                      timeout=300) as download:
        lines = sum(chunk.count(b"\n") for chunk in download.iter_content(1 << 16))
    assert lines == FILES + 1
    assert api_peak.stop() - before < 64 * MIB
