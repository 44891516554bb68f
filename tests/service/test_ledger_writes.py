"""The ledger writes each result row once (posterq.jobs.result_writes), in PostgreSQL and SQLite alike:
a redelivered batch writes nothing, a cancelled job takes no results, two batches racing over the
same jobs write each result once and finish each job once, no result row is ever updated, and the
migration from the layout of pending rows keeps every item's answer."""

import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from harness import ensure_database

from posterq.jobs.database import Database
from posterq.jobs.keys import new_job_id
from posterq.jobs.ledger import Ledger

from .conftest import DATABASE_URL

pytestmark = pytest.mark.database
MODEL = {"name": "tiny", "version": "1.0.0"}


@pytest.fixture(params=["postgresql", "sqlite"])
def ledger(request, database, tmp_path) -> Ledger:
    """A ledger on the tests' PostgreSQL (emptied around each test), or on a fresh SQLite file."""
    if request.param == "postgresql":
        return Ledger(database)
    sqlite = Database(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    sqlite.migrate()
    return Ledger(sqlite)


def _job(ledger: Ledger, count: int) -> str:
    job_id = new_job_id()
    ledger.create({"id": job_id, "source": "upload", "lane": "bulk", "tenant": job_id, "enumerated": True,
                   "created_at": time.time()}, [{"name": f"p{i}.jpg"} for i in range(count)])
    return job_id


def _outcome(job_id: str, index: int) -> tuple:
    if index % 5 == 4:
        return (job_id, index, {"genres": [], "scores": {}, "error": {"code": "truncated", "message": "cut"},
                                "worker": "w@test"}, "truncated")
    result = {"genres": ["Drama"], "scores": {"Drama": 0.5 + index / 1000}, "worker": "w@test"}
    return (job_id, index, result, "ok")


def test_a_redelivered_batch_writes_nothing(ledger):
    job_id = _job(ledger, 6)
    batch = [_outcome(job_id, index) for index in range(5)]
    written, finished = ledger.write(batch, MODEL, time.time())
    assert (written, finished) == (batch, [])
    first = ledger.results(job_id)
    again = [(job_id, index, {"genres": ["Comedy"], "scores": {}, "worker": "late@test"}, "ok")
             for index in range(5)]
    assert ledger.write(again, MODEL, time.time()) == ([], [])
    assert ledger.results(job_id) == first and first[0]["worker"] == "w@test"
    job = ledger.get(job_id)
    assert (job["status"], job["done"], job["failed"]) == ("running", 4, 1)
    # The last result finishes the job, once; a redelivery of it finds the job final and written.
    written, finished = ledger.write([_outcome(job_id, 5), *batch], MODEL, time.time())
    assert written == [_outcome(job_id, 5)]
    assert [(job.job_id, job.status, job.has_output) for job in finished] == [(job_id, "done", False)]
    assert ledger.write([_outcome(job_id, 5)], MODEL, time.time()) == ([], [])
    assert (ledger.get(job_id)["done"], ledger.get(job_id)["failed"]) == (5, 1)


def test_a_cancelled_job_takes_no_results(ledger):
    job_id, other = _job(ledger, 3), _job(ledger, 1)
    assert ledger.cancel(job_id)
    written, finished = ledger.write([_outcome(job_id, 0), _outcome(other, 0)], MODEL, time.time())
    assert written == [_outcome(other, 0)] and [job.job_id for job in finished] == [other]
    assert [row["status"] for row in ledger.results(job_id)] == ["pending"] * 3
    assert list(ledger.stream(job_id)) == []
    job = ledger.get(job_id)
    assert (job["status"], job["done"], job["failed"]) == ("cancelled", 0, 0)


def test_two_batches_racing_over_the_same_jobs_write_each_result_once(database):
    # Each thread writes every result of both jobs, each batch naming the jobs in its own order:
    # no deadlock, each result written by exactly one of them, each job finished by exactly one.
    ledger, count = Ledger(database), 40
    first, second = _job(ledger, count), _job(ledger, count)
    written, finished, errors = [], [], []

    def write(order: tuple[str, str]) -> None:
        try:
            for start in range(0, count, 2):
                batch = [_outcome(job_id, index) for job_id in order for index in (start, start + 1)]
                mine, done = ledger.write(batch, MODEL, time.time())
                written.extend((job_id, index) for job_id, index, _, _ in mine)
                finished.extend(job.job_id for job in done)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(order,)) for order in ((first, second), (second, first))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(written) == sorted((job_id, index) for job_id in (first, second) for index in range(count))
    assert sorted(finished) == sorted([first, second])
    for job_id in (first, second):
        job = ledger.get(job_id)
        assert (job["status"], job["done"], job["failed"]) == ("done", 32, 8)


def _result_counters(database: Database) -> dict:
    # This backend's statistics flushed first (it is the pool's only connection), then read afresh.
    with database.transaction() as tx:
        tx.execute("SELECT pg_stat_force_next_flush()")
    with database.transaction() as tx:
        row = tx.execute("SELECT n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, n_dead_tup "
                         "FROM pg_stat_user_tables WHERE relname = 'posterq_results'").fetchone()
    return dict(zip(("inserted", "updated", "deleted", "hot_updated", "dead"), row, strict=True))


def test_a_result_row_is_inserted_once_and_never_updated(database):
    # A row written pending and filled in later leaves a dead tuple per result.
    single = Database(DATABASE_URL, pool_size=1)
    try:
        ledger = Ledger(single)
        job_id = _job(ledger, 30)
        before = _result_counters(single)
        for start in range(0, 30, 8):
            ledger.write([_outcome(job_id, index) for index in range(start, min(start + 8, 30))], MODEL,
                         time.time())
        ledger.write([_outcome(job_id, index) for index in range(8)], MODEL, time.time())  # redelivered
        after = _result_counters(single)
        assert ledger.get(job_id)["status"] == "done"
    finally:
        single.close()
    moved = {name: after[name] - before[name] for name in after}
    assert (moved["inserted"], moved["updated"], moved["deleted"], moved["hot_updated"]) == (30, 0, 0, 0)
    assert moved["dead"] <= 0  # none added (autovacuum may only have taken some away)


# The layout before migration 12: one row per item in posterq_results, `pending` until filled in.
_OLD_JOB = ("INSERT INTO posterq_jobs (id, source, status, lane, tenant, enumerated, total, done, failed, "
            "created_at, finished_at) VALUES (%s, 'directory', %s, 'bulk', %s, %s, %s, %s, %s, %s, %s)")
_OLD_RESULT = ("INSERT INTO posterq_results (job_id, idx, name, path, status, genres, scores, error_code, "
               f"error_message, worker, model_version, finished_at) VALUES ({', '.join(['%s'] * 12)})")


@pytest.fixture(params=["postgresql", "sqlite"])
def old_database(request, tmp_path):
    """A database at schema 11 (pending rows in posterq_results): PostgreSQL's its own, emptied first."""
    if request.param == "sqlite":
        old = Database(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    else:
        parts = urlsplit(DATABASE_URL)
        url = urlunsplit(parts._replace(path=f"{parts.path}_v11"))
        ensure_database(url)
        old = Database(url, pool_size=2)
        with old.transaction() as tx:
            tx.execute("DROP TABLE IF EXISTS posterq_results, posterq_items, posterq_jobs, posterq_schema")
    assert old.migrate(upto=11)[-1] == 11
    yield old
    old.close()


def test_the_migration_from_pending_rows_keeps_every_items_answer(old_database):
    db, now = old_database, time.time()
    running, finished = new_job_id(), new_job_id()
    with db.transaction() as tx:
        tx.execute(_OLD_JOB, (running, "running", running, True, 4, 1, 1, now - 10, None))
        tx.execute(_OLD_JOB, (finished, "done", finished, True, 1, 1, 0, now - 10, now - 5))
        nothing = (None,) * 7
        rows = [(running, 0, "a/one.jpg", "/data/a/one.jpg", "ok", db.json(["Drama"]),
                 db.json({"Drama": 0.75}), None, None, "w@test", "1.0.0", now - 8),
                (running, 1, "b/", "/data/b", "error", None, None, "unreadable", "cannot list b/",
                 None, None, None),
                (running, 2, "a/two.jpg", "/data/a/two.jpg", "pending", *nothing),
                (running, 3, "a/three.jpg", None, "pending", *nothing),
                (finished, 0, "x.jpg", None, "ok", db.json(["Comedy"]), db.json({"Comedy": 0.5}), None, None,
                 "w@test", "1.0.0", now - 5)]
        tx.executemany(_OLD_RESULT, rows)
    assert db.migrate()[0] == 12  # and every step after it
    ledger = Ledger(db)
    one = {"index": 0, "name": "a/one.jpg", "path": "a/one.jpg", "status": "ok", "genres": ["Drama"],
           "scores": {"Drama": 0.75}, "error": None, "worker": "w@test", "model_version": "1.0.0",
           "reused": False}
    listing = {"index": 1, "name": "b/", "path": "b/", "status": "error", "genres": [], "scores": {},
               "error": {"code": "unreadable", "message": "cannot list b/"}, "worker": None,
               "model_version": None, "reused": False}
    assert ledger.results(running) == [one, listing, {"index": 2, "name": "a/two.jpg", "status": "pending"},
                                       {"index": 3, "name": "a/three.jpg", "status": "pending"}]
    assert ledger.results(running, 1, 2) == [listing, {"index": 2, "name": "a/two.jpg", "status": "pending"}]
    assert list(ledger.stream(running)) == [one, listing]
    assert ledger.pending_after(running, -1, 10) == [(2, "a/two.jpg", "/data/a/two.jpg"),
                                                     (3, "a/three.jpg", None)]
    assert ledger.pending_after(running, 2, 10) == [(3, "a/three.jpg", None)]
    assert ledger.items_of(running, failed_only=True) == [(1, "b/", "/data/b")]
    assert ledger.items_of(running, failed_only=False) == [
        (0, "a/one.jpg", "/data/a/one.jpg"), (1, "b/", "/data/b"), (2, "a/two.jpg", "/data/a/two.jpg"),
        (3, "a/three.jpg", None)]
    assert [row["genres"] for row in ledger.stream(finished)] == [["Comedy"]]
    with db.transaction() as tx:
        assert tx.execute("SELECT count(*) FROM posterq_results WHERE status = 'pending'").fetchone()[0] == 0
    # The migrated job goes on: its pending items are written once, the first result is kept.
    written, done = ledger.write([_outcome(running, 0), _outcome(running, 2), _outcome(running, 3)], MODEL,
                                 time.time())
    assert [index for _, index, _, _ in written] == [2, 3]
    assert [(job.job_id, job.status) for job in done] == [(running, "done")]
    assert ledger.results(running)[0] == one
    # Expiry takes the items and the results with their jobs.
    assert ledger.expire(older_than=-60) == 2
    with db.transaction() as tx:
        assert [tx.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("posterq_jobs", "posterq_items", "posterq_results")] == [0, 0, 0]


def test_a_batch_is_one_round_trip_in_postgresql(database, tmp_path):
    # What the client sends for two batches, from libpq's own trace: each waits for the server
    # once (one Sync), with no BEGIN, COMMIT or pool check of its own.
    single = Database(DATABASE_URL, pool_size=1)
    try:
        ledger = Ledger(single)
        job_id = _job(ledger, 6)
        ledger.write([_outcome(job_id, 0)], MODEL, time.time())  # the pool's connection made
        with single.transaction() as tx:
            pgconn = tx.connection.pgconn
        with open(tmp_path / "trace", "w") as trace:
            pgconn.trace(trace.fileno())
            for start in (1, 3):
                ledger.write([_outcome(job_id, start), _outcome(job_id, start + 1)], MODEL, time.time())
            pgconn.untrace()
    finally:
        single.close()
    sent = [line.split("\t")[3].split(" ")[0] for line in (tmp_path / "trace").read_text().splitlines()
            if line.split("\t")[1:2] == ["F"]]
    assert [message for message in sent if message in ("Sync", "Query", "Flush")] == ["Sync", "Sync"], sent
