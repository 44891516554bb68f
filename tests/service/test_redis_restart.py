"""A Redis restarted mid-job (SHUTDOWN, or SIGKILL) loses no accepted poster and counts none twice.

The test runs its own redis-server with append-only persistence (fsync on every write, so a
SIGKILL loses nothing Redis acknowledged) in a temporary folder, on a port of its own.
"""

import pytest
from harness import RedisServer, assert_exactly_once, eventually, is_final, wait_for_job
from samples import poster_bytes

pytestmark = pytest.mark.redis_restart
POSTERS = 300
#: What Celery's consumer logs when its broker goes away (celery/worker/consumer/consumer.py).
LOST_BROKER = ("Connection to broker lost", "Cannot connect to")
#: What a worker logs once any of its parts met Redis gone: its consumer, or its heartbeat (every
#: heartbeat_interval, whatever the consumer is doing; a consumer whose one process is busy with a
#: batch reads nothing from Redis until that batch ends).
MET_REDIS_GONE = (*LOST_BROKER, "posterq-heartbeat failed")
#: What Celery's consumer logs each time it connects to its broker (celery/worker/consumer/connection.py).
CONNECTED = "Connected to redis"


@pytest.fixture
def private_redis(tmp_path):
    """A fresh redis-server of this test's own, restartable on its data folder."""
    server = RedisServer(tmp_path / "redis-data", "--appendonly", "yes", "--appendfsync", "always",
                         "--maxmemory-policy", "noeviction")
    yield server.start()
    server.stop()


def _wait_for(api, job_id: str, until, timeout: float) -> dict:
    # While Redis is down the API answers 503; that is not the job's answer.
    return wait_for_job(api.url, job_id, until=until, timeout=timeout, http=api.http, ride_out=True)


@pytest.mark.parametrize("how", ["shutdown", "sigkill"])
def test_a_redis_restart_mid_job_loses_no_accepted_poster(how, private_redis, service_settings, data_root,
                                                          spawn_worker_with, make_api):
    settings = service_settings.replace(
        redis_url=private_redis.url, max_posters_per_job=POSTERS, batch_time_limit=3, sweep_interval=0.5)
    folder = data_root / f"restart-{how}"
    folder.mkdir()
    for i in range(POSTERS):
        (folder / f"poster_{i:03d}.jpg").write_bytes(poster_bytes(i, size=(800, 1200)))
    workers = [spawn_worker_with(f"{name}-{how}@test", settings) for name in ("alpha", "beta")]
    api = make_api(settings)
    directory = api.post("/jobs", json={"directory": str(folder)})
    files = [("files", (f"u{i}.jpg", poster_bytes(1000 + i, size=(800, 1200)))) for i in range(40)]
    uploads = api.post("/jobs", files=files)
    assert directory.status_code == uploads.status_code == 202, (directory.text, uploads.text)
    job_id = directory.json()["id"]
    _wait_for(api, job_id, lambda job: job["done"] >= 20, timeout=60)

    connected = [worker.log(None).count(CONNECTED) for worker in workers]
    if how == "shutdown":
        private_redis.shutdown()
    else:
        private_redis.kill()
    def logs() -> str:
        return "\n".join(worker.log() for worker in workers)

    # Redis comes back only once the workers and the API have met it gone: events, not a pause.
    eventually(lambda: all(any(sign in worker.log(None) for sign in MET_REDIS_GONE) for worker in workers)
               and api.get("/readyz").json()["redis"] is False, "sign that Redis was met gone", 120, logs)
    private_redis.start()

    for accepted, total in ((job_id, POSTERS), (uploads.json()["id"], 40)):
        job = _wait_for(api, accepted, is_final, timeout=120)
        assert_exactly_once(job, job["results"], total)
        assert job["failed"] == 0, [row for row in job["results"] if row["status"] != "ok"]
    # Every worker came back to Redis (the others' sweeps would have served the job without it).
    eventually(lambda: all(worker.log(None).count(CONNECTED) > before
                           for worker, before in zip(workers, connected, strict=True)),
               "reconnect of every worker", 120, logs)
    assert all(worker.process.poll() is None for worker in workers)


@pytest.mark.parametrize("how", ["shutdown", "sigkill"])
def test_a_batch_that_outlives_its_broker_connection_ends_without_ending_the_worker(
        how, private_redis, service_settings, data_root, gated_worker, make_api, tmp_path):
    # A batch holds its posters at the gate while Redis restarts and the worker reconnects; then it
    # finishes, and its token's ack (or reject) goes to the channel of the lost connection, which
    # kombu can no longer reach. The worker must live on and the job end: an ack that cannot be
    # made leaves the token to kombu's visibility timeout and the posters to the sweep.
    settings = service_settings.replace(redis_url=private_redis.url, sweep_interval=0.5)
    worker, gates = gated_worker(f"outlive-{how}@test", settings)
    api = make_api(settings)
    posted = api.post("/jobs", files=[("files", (f"p{i}.jpg", poster_bytes(i))) for i in range(3)])
    assert posted.status_code == 202, posted.text
    eventually((gates / "batch.reached").exists, "batch at the gate", 60, worker.log)

    connected = worker.log(None).count(CONNECTED)
    private_redis.shutdown() if how == "shutdown" else private_redis.kill()
    eventually(lambda: any(sign in worker.log(None) for sign in LOST_BROKER), "lost broker", 120, worker.log)
    private_redis.start()

    def reconnected() -> bool:
        assert worker.process.poll() is None, worker.log()
        return worker.log(None).count(CONNECTED) > connected

    eventually(reconnected, "reconnect", 120, worker.log)
    (gates / "batch").unlink()

    job = _wait_for(api, posted.json()["id"], is_final, timeout=120)
    assert_exactly_once(job, job["results"], 3)
    assert job["failed"] == 0, job["results"]
    assert worker.process.poll() is None, worker.log()
    assert "Unrecoverable error" not in worker.log(None), worker.log()
