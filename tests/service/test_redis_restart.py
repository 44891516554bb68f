"""A Redis restarted mid-job (SHUTDOWN, or SIGKILL) loses no accepted poster and counts none twice.

The test runs its own redis-server with append-only persistence (fsync on every write, so a
SIGKILL loses nothing Redis acknowledged) in a temporary folder, on a port of its own.
"""

import time

import pytest
from harness import RedisServer, assert_exactly_once, is_final, wait_for_job
from samples import poster_bytes

pytestmark = pytest.mark.redis_restart
POSTERS = 300
#: What Celery's consumer logs when its broker goes away (celery/worker/consumer/consumer.py).
LOST_BROKER = ("Connection to broker lost", "Cannot connect to")


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

    if how == "shutdown":
        private_redis.shutdown()
    else:
        private_redis.kill()
    # Redis comes back only once the workers and the API have met it gone: events, not a pause.
    deadline = time.monotonic() + 120
    while not (all(any(sign in worker.log(None) for sign in LOST_BROKER) for worker in workers)
               and api.get("/readyz").json()["redis"] is False):
        assert time.monotonic() < deadline, "\n".join(worker.log() for worker in workers)
        time.sleep(0.05)
    private_redis.start()

    for accepted, total in ((job_id, POSTERS), (uploads.json()["id"], 40)):
        job = _wait_for(api, accepted, is_final, timeout=120)
        assert_exactly_once(job, job["results"], total)
        assert job["failed"] == 0, [row for row in job["results"] if row["status"] != "ok"]
