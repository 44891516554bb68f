"""A Redis restarted mid-job (SHUTDOWN, or SIGKILL) loses no accepted poster and counts none twice.

The test runs its own redis-server with append-only persistence (fsync on every write, so a
SIGKILL loses nothing Redis acknowledged) in a temporary folder, on a port of its own.
"""

import shutil
import socket
import subprocess
import time

import pytest
import redis
import requests
from samples import poster_bytes

pytestmark = pytest.mark.redis_restart
POSTERS = 300


class PrivateRedis:
    """redis-server on a free port with appendonly yes, restartable on the same data folder."""

    def __init__(self, folder):
        self.folder = folder
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> "PrivateRedis":
        """Start redis-server and wait until it answers."""
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--maxmemory-policy", "noeviction"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def shutdown(self) -> None:
        """SHUTDOWN: Redis flushes its append-only file and exits."""
        try:
            redis.Redis.from_url(self.url).shutdown()
        except redis.ConnectionError:
            pass  # the connection closes as Redis exits
        self.process.wait(timeout=20)

    def kill(self) -> None:
        """SIGKILL: no goodbye, only what the append-only file already holds."""
        self.process.kill()
        self.process.wait(timeout=20)

    def stop(self) -> None:
        """Stop whatever is left."""
        if self.process and self.process.poll() is None:
            self.kill()


@pytest.fixture
def private_redis(tmp_path):
    """A fresh redis-server of this test's own."""
    server = PrivateRedis(tmp_path / "redis-data")
    server.folder.mkdir()
    yield server.start()
    server.stop()


def _get(api, path: str, **params) -> dict | None:
    # While Redis is down the API answers 503; that is not the job's answer.
    try:
        response = api.get(path, params=params)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def _wait_for(api, job_id: str, condition, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = _get(api, f"/jobs/{job_id}", limit=1000)
        if job and condition(job):
            return job
        time.sleep(0.1)
    brief = job and {key: value for key, value in job.items() if key != "results"}
    raise AssertionError(f"job {job_id} never got there in {timeout} s: {brief}")


@pytest.mark.parametrize("how", ["shutdown", "sigkill"])
def test_a_redis_restart_mid_job_loses_no_accepted_poster(how, private_redis, service_settings, data_root,
                                                          spawn_worker_with, make_api):
    settings = service_settings.replace(
        redis_url=private_redis.url, max_posters_per_job=POSTERS, batch_time_limit=3, sweep_interval=0.5)
    folder = data_root / f"restart-{how}"
    folder.mkdir()
    for i in range(POSTERS):
        (folder / f"poster_{i:03d}.jpg").write_bytes(poster_bytes(i, size=(800, 1200)))
    for name in ("alpha", "beta"):
        spawn_worker_with(f"{name}-{how}@test", settings)
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
    time.sleep(1.5)  # workers and the API meet a Redis that is not there
    private_redis.start()

    for accepted, total in ((job_id, POSTERS), (uploads.json()["id"], 40)):
        job = _wait_for(api, accepted, lambda job: job["status"] in ("done", "failed"), timeout=120)
        results = job["results"]
        assert job["status"] == "done" and job["failed"] == 0, [r for r in results if r["status"] != "ok"]
        assert job["done"] == job["total"] == total == len(results)
        assert sorted(row["index"] for row in results) == list(range(total))
