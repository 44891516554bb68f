"""The job store against real Redis: schema, claims, idempotent writes, cancellation, TTLs."""

import threading
import time

import redis

from posterq.jobs.keys import JobStatus, Keys
from posterq.jobs.records import FINISHED_TTL
from posterq.jobs.store import JobStore


def _job(store, count=3, source="upload"):
    items = [{"name": f"p{i}.jpg", "kind": "upload"} for i in range(count)]
    return store.jobs.create(source, items, [b"x%d" % i for i in range(count)])


def test_create_job_stores_items_blobs_and_ready_refs(store, redis_client):
    job = _job(store, 3)
    assert job["status"] == "queued" and job["total"] == 3 and job["progress"] == 0
    keys = Keys(store.settings.key_prefix)
    assert redis_client.llen(keys.ready(job["id"])) == 3 and store.fair_queue.depth() == 3
    assert redis_client.get(keys.blob(job["id"], 2)) == b"x2"
    assert 0 < redis_client.ttl(keys.blob(job["id"], 2)) <= store.settings.upload_ttl
    assert [row["status"] for row in store.jobs.results(job["id"])] == ["pending"] * 3


def test_claim_is_atomic_and_a_redelivered_batch_finds_its_refs(store):
    job = _job(store, 6)
    first = store.claims.claim("task-a", 4, 0)[0]
    assert first == [(job["id"], i) for i in range(4)]
    # The same task id (a redelivery) gets the same refs, not new ones.
    assert store.claims.claim("task-a", 4, 0)[0] == first
    assert store.claims.claim("task-b", 4, 0)[0] == [(job["id"], 4), (job["id"], 5)]
    assert store.claims.claim("task-c", 4, 0)[0] == []


def test_a_part_filled_batch_waits_at_most_max_wait(store):
    _job(store, 1)
    started = time.monotonic()
    refs = store.claims.claim("task-a", 4, 0.3)[0]
    # The upper bound only tells "gave up after max_wait" from "waited for a full batch" (forever):
    # loose enough for a loaded machine.
    assert len(refs) == 1 and 0.25 <= time.monotonic() - started < 20


def test_an_empty_claim_does_not_wait(store, monkeypatch):
    # Waiting is a blocking BLPOP on the arrivals list; a claim that finds nothing must not issue one.
    monkeypatch.setattr(store.client, "blpop", _no_blocking_call)
    assert store.claims.claim("task-a", 4, 5)[0] == []


def _no_blocking_call(*args, **kwargs):
    raise AssertionError(f"a blocking BLPOP{args} was issued")


def test_results_are_written_once_and_counted_once(store, redis_client):
    job = _job(store, 2)
    outcomes = [(job["id"], 0, {"index": 0, "name": "p0.jpg", "error": None}, "ok"),
                (job["id"], 1, {"index": 1, "name": "p1.jpg", "error": {"code": "empty"}}, "empty")]
    store.claims.write_results(outcomes[:1], {"name": "m", "version": "1"})
    store.claims.write_results(outcomes[:1], {"name": "m", "version": "1"})  # a redelivered batch
    assert store.jobs.get(job["id"])["done"] == 1
    finished = store.claims.write_results(outcomes, {"name": "m", "version": "1"})
    assert [(job.job_id, job.status, job.has_output) for job in finished] == [(job["id"], "done", False)]
    view = store.jobs.get(job["id"])
    assert (view["status"], view["done"], view["failed"], view["progress"]) == ("done", 1, 1, 1.0)
    assert view["model"] == {"name": "m", "version": "1"}
    keys = Keys(store.settings.key_prefix)
    # Upload bytes and items leave Redis once classified; the results are the database's, and the
    # final job's hash stays only for the long-polls of the moment.
    assert redis_client.exists(keys.blob(job["id"], 0), keys.blob(job["id"], 1), keys.items(job["id"])) == 0
    assert 0 < redis_client.ttl(keys.job(job["id"])) <= FINISHED_TTL
    rows = store.jobs.results(job["id"])
    assert [(row["index"], row["status"]) for row in rows] == [(0, "ok"), (1, "error")]
    assert store.stats.read()["posters:ok"] == 1 and store.stats.read()["posters:empty"] == 1


def test_a_job_where_every_poster_failed_is_failed(store):
    job = _job(store, 1)
    store.claims.write_results([(job["id"], 0, {"index": 0, "error": {"code": "empty"}}, "empty")], {})
    assert store.jobs.get(job["id"])["status"] == JobStatus.FAILED.value


def test_cancel_deletes_waiting_posters_keeps_results_and_blocks_late_writes(store, redis_client):
    job = _job(store, 3)
    store.claims.write_results([(job["id"], 0, {"index": 0, "error": None}, "ok")], {})
    view = store.jobs.cancel(job["id"])
    assert view["status"] == "cancelled" and view["done"] == 1
    keys = Keys(store.settings.key_prefix)
    assert redis_client.exists(keys.items(job["id"]), *[keys.blob(job["id"], i) for i in range(3)]) == 0
    # What was classified before the cancel stays readable.
    assert [row["status"] for row in store.jobs.results(job["id"])] == ["ok", "pending", "pending"]
    store.claims.write_results([(job["id"], 1, {"index": 1, "error": None}, "ok")], {})
    assert store.jobs.get(job["id"])["done"] == 1
    assert not redis_client.hexists(keys.items(job["id"]), "1")  # nothing of it is left to classify
    assert store.jobs.cancel("no-such-job") is None


def test_heartbeats_name_live_workers(store):
    store.stats.heartbeat("w1@test", {"pid": 1})
    assert list(store.stats.workers()) == ["w1@test"]
    store.stats.forget_worker("w1@test")
    assert store.stats.workers() == {}


def _waiters(store, job_id, count, timeout):
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(store.jobs.wait(job_id, timeout)))
               for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, answers


def _blocked_in_redis(redis_client, count: int, timeout: float = 60) -> None:
    """Wait until `count` clients of the test database block in BLMOVE (Redis's CLIENT LIST says so).

    A waiter that had not started when the job finished would answer at once, unwoken: a test
    of waking must see its waiters blocked first.
    """
    db = int(redis_client.connection_pool.connection_kwargs.get("db", 0))
    deadline = time.monotonic() + timeout
    while True:
        blocked = [client for client in redis_client.client_list()
                   if int(client["db"]) == db and "b" in client["flags"] and client["cmd"] == "blmove"]
        if len(blocked) >= count:
            return
        assert time.monotonic() < deadline, f"{len(blocked)} of {count} waiters blocked: {blocked}"
        time.sleep(0.02)


def test_waiting_clients_all_wake_when_the_job_finishes(store, redis_client):
    # Waits of 120 s joined for at most 60: a waiter back within that was woken, not timed out.
    job = _job(store, 1)
    threads, answers = _waiters(store, job["id"], 3, timeout=120)
    _blocked_in_redis(redis_client, 3)
    assert answers == []  # all three block: the job is not final
    store.claims.write_results([(job["id"], 0, {"index": 0, "error": None}, "ok")], {})
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert [answer["status"] for answer in answers] == ["done"] * 3
    # A job already final answers at once: no blocking wait at all.
    waiter = threading.Thread(target=lambda: answers.append(store.jobs.wait(job["id"], 120)))
    waiter.start()
    waiter.join(timeout=60)
    assert not waiter.is_alive() and answers[-1]["status"] == "done"


def test_a_wait_ends_after_its_timeout_or_on_cancel(store, redis_client):
    job = _job(store, 1)
    started = time.monotonic()
    assert store.jobs.wait(job["id"], 0.3)["status"] == "queued"
    assert 0.25 <= time.monotonic() - started < 20  # the timeout, not some other wait
    assert store.jobs.wait("no-such-job", 5) is None
    threads, answers = _waiters(store, job["id"], 1, timeout=120)
    _blocked_in_redis(redis_client, 1)
    store.jobs.cancel(job["id"])
    threads[0].join(timeout=60)  # woken by the cancel, long before its own timeout
    assert not threads[0].is_alive() and answers[0]["status"] == "cancelled"


def test_without_a_batch_wait_a_lone_poster_is_claimed_at_once(store, monkeypatch):
    _job(store, 1)
    monkeypatch.setattr(store.client, "blpop", _no_blocking_call)
    assert len(store.claims.claim("task-a", 16, 0)[0]) == 1


def test_a_wait_longer_than_the_socket_timeout_blocks_in_slices(store, service_settings):
    # redis-py gives up on a socket silent for socket_timeout seconds: a blocking call must not be longer.
    impatient = JobStore(redis.Redis.from_url(store.settings.redis_url, socket_timeout=0.5), service_settings)
    job = _job(store, 1)
    started = time.monotonic()
    assert impatient.jobs.wait(job["id"], 1.6)["status"] == "queued"
    assert 1.5 <= time.monotonic() - started < 20


def test_a_claim_reads_its_items_and_bytes_in_the_same_round_trip(store):
    job = _job(store, 3)
    other = _job(store, 1)
    store.jobs.cancel(other["id"])  # cancelled: nothing of it is claimed or read
    refs, items, _ = store.claims.claim("task-a", 4, 0)
    assert refs == [(job["id"], i) for i in range(3)]
    assert [(item["job_id"], item["index"], item["kind"], item["top_k"]) for item in items] == [
        (job["id"], i, "upload", None) for i in range(3)]
    assert [(item["index"], item["name"], item["data"]) for item in items] == [
        (0, "p0.jpg", b"x0"), (1, "p1.jpg", b"x1"), (2, "p2.jpg", b"x2")]
    # A redelivery finds the same refs; a job cancelled meanwhile has no items to classify.
    store.jobs.cancel(job["id"])
    assert store.claims.claim("task-a", 4, 0)[:2] == (refs, [])
