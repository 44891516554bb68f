"""A full Redis never stops the service: the API refuses new work before Redis is full, and workers
wait out a Redis over its maxmemory (never exit), then drain everything it holds, on their own.

The tests run their own redis-server with a small maxmemory and no eviction, as production runs it.
"""

import os
import signal
import time

import pytest
import redis
from harness import RedisServer, assert_exactly_once, wait_for_job
from samples import poster_bytes

from posterq.worker.tasks import refused_for_memory

MAXMEMORY = 16 << 20
POSTERS_PER_JOB = 20


@pytest.fixture
def small_redis(tmp_path):
    """A fresh redis-server of this test's own: 16 MB at most, no eviction."""
    server = RedisServer(tmp_path / "redis", "--appendonly", "no", "--maxmemory", str(MAXMEMORY),
                         "--maxmemory-policy", "noeviction")
    yield server.start()
    server.stop()


@pytest.fixture
def small_settings(service_settings, small_redis):
    """The service's test settings on the small Redis, with a quick sweep (lost tokens come back fast).

    The API reads Redis's memory for every request (redis_memory_interval=0), so that an answer
    follows the memory Redis holds at that moment, with no reading to wait out. Every job sends the
    same posters, so results are not reused by content: each job's posters go through Redis.
    """
    return service_settings.replace(redis_url=small_redis.url, batch_time_limit=3, sweep_interval=0.5,
                                    redis_memory_interval=0, reuse_results=False)


@pytest.fixture
def client(small_redis):
    """A client of the small Redis."""
    client = redis.Redis.from_url(small_redis.url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def posters() -> list[tuple[str, tuple[str, bytes]]]:
    """One upload job's `files` fields: about 25 KB a poster, 500 KB a job."""
    return [("files", (f"p{i}.jpg", poster_bytes(i, size=(800, 1200)))) for i in range(POSTERS_PER_JOB)]


def _oom_refusals(client: redis.Redis) -> int:
    """How many commands Redis has refused for want of memory since it started."""
    return int(client.info("errorstats").get("errorstat_OOM", {}).get("count", 0))


def _overfill(client: redis.Redis) -> None:
    """Push Redis over its maxmemory with a key of somebody else's, until _free() lets it expire."""
    # SETRANGE makes the value in Redis: a 16 MB SET would leave a 16 MB query buffer behind too.
    client.setrange("not-posterq", MAXMEMORY, b"x")
    assert client.info("memory")["used_memory"] > MAXMEMORY


def _free(client: redis.Redis) -> None:
    """Let the overfilling key expire, so that Redis frees the memory by itself.

    As it does when results or unclassified uploads reach their TTL, or another application's
    keys go. Set when the test has seen what it waits for, never on a timer that a slow machine
    could outrun.
    """
    client.pexpire("not-posterq", 1)  # PEXPIRE is one of the commands a full Redis still takes


def _wait_for(condition, worker, what: str, timeout: float = 120) -> None:
    """Poll condition() while the worker lives; fail after a deadline far above any machine's time."""
    deadline = time.monotonic() + timeout
    while not condition():
        _assert_alive(worker)
        assert time.monotonic() < deadline, f"never happened: {what}\n{worker.log()}"
        time.sleep(0.05)


def _wait_done(api, job_ids: list[str], timeout: float = 120) -> None:
    for job_id in job_ids:
        job = wait_for_job(api.url, job_id, timeout=timeout, http=api.http, ride_out=True)
        assert_exactly_once(job, job["results"], POSTERS_PER_JOB)
        assert job["failed"] == 0, [row["error"] for row in job["results"] if row["error"]]


def _assert_alive(worker) -> None:
    assert worker.process.poll() is None, f"the worker exited:\n{worker.log()}"
    assert "Unrecoverable error" not in worker.log(None)


def _assert_refused_for_memory(response) -> None:
    """503 redis_full, with a Retry-After, as JSON."""
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "redis_full", response.text
    assert int(response.headers["Retry-After"]) >= 1


def test_the_api_refuses_new_work_before_redis_is_full_and_a_worker_drains_it(
        small_settings, client, posters, spawn_worker_with, make_api):
    api = make_api(small_settings)
    accepted, answers = [], []
    while len(answers) < 200:  # 200 x 500 KB is six times what Redis holds: refused long before
        response = api.post("/jobs", files=posters)
        answers.append(response.status_code)
        if response.status_code != 202:
            break
        accepted.append(response.json()["id"])
    _assert_refused_for_memory(response)
    # Refused with room to spare: Redis never had to refuse a command, not even the API's own.
    assert len(accepted) >= 5, answers
    assert client.info("memory")["used_memory"] < MAXMEMORY
    assert _oom_refusals(client) == 0
    # Until workers free memory, new work stays refused.
    _assert_refused_for_memory(api.post("/jobs", files=posters))

    worker = spawn_worker_with("drain@test", small_settings)
    _wait_done(api, accepted)
    _assert_alive(worker)
    assert _oom_refusals(client) == 0

    # Memory came back (the upload bytes went with their results): new work is taken again, on its own.
    again = api.post("/jobs", files=posters)
    assert again.status_code == 202, again.text
    _wait_done(api, [again.json()["id"]])


def test_workers_ride_out_a_redis_over_its_maxmemory(small_settings, client, posters, spawn_worker,
                                                     make_api):
    api = make_api(small_settings)
    before = [api.post("/jobs", files=posters) for _ in range(4)]
    assert [response.status_code for response in before] == [202] * 4

    # A worker started while Redis refuses every write (the hostile run's worker exited here).
    _overfill(client)
    _assert_refused_for_memory(api.post("/jobs", files=posters))
    worker = spawn_worker("ride-out@test", settings=small_settings, wait=False)
    # Redis stays full until the worker has met it (said so in its log), then frees itself.
    _wait_for(lambda: "Redis is full" in worker.log(None), worker, "the worker met the full Redis")
    _free(client)
    _wait_done(api, [response.json()["id"] for response in before])
    _assert_alive(worker)
    assert "Redis is full" in worker.log(None)

    # A worker at work when Redis fills: it receives the next tokens while Redis refuses writes,
    # Celery's unacked bookkeeping among them. Stopped meanwhile, so that the order is certain.
    refusals = _oom_refusals(client)
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        during = [api.post("/jobs", files=posters) for _ in range(2)]
        assert [response.status_code for response in during] == [202] * 2
        _overfill(client)
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    # Redis stays full until the worker did meet it (a command refused), then frees itself.
    _wait_for(lambda: _oom_refusals(client) > refusals, worker, "the worker met the full Redis")
    _free(client)
    _wait_done(api, [response.json()["id"] for response in during])
    _assert_alive(worker)

    after = api.post("/jobs", files=posters)
    assert after.status_code == 202, after.text
    _wait_done(api, [after.json()["id"]])
    _assert_alive(worker)


def test_every_shape_of_an_out_of_memory_refusal_is_recognised(client):
    # What a batch meets when Redis is full: a plain command, a MULTI/EXEC pipeline, a Lua script.
    client.setrange("not-posterq", MAXMEMORY, b"x")
    refusals = []
    for attempt in (lambda: client.set("k", 1),
                    lambda: client.pipeline(transaction=True).incr("k").expire("k", 5).execute(),
                    lambda: client.eval("return redis.call('SET', KEYS[1], 1)", 1, "k")):
        with pytest.raises(redis.ResponseError) as refused:
            attempt()
        refusals.append(refused.value)
    assert all(refused_for_memory(exc) for exc in refusals), refusals
    client.delete("not-posterq")
    client.set("k", "text")
    with pytest.raises(redis.ResponseError) as other:
        client.incr("k")
    assert not refused_for_memory(other.value)
