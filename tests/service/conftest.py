"""Fixtures for the queue service: real Redis (a dedicated database, flushed around each test),
real Celery worker subprocesses (`posterq worker`), and the API served over real HTTP.

POSTERQ_TEST_REDIS_URL picks the Redis database (default redis://127.0.0.1:6379/13).
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path

import pytest
import redis
import requests
from werkzeug.serving import make_server

from posterq.config import Settings
from posterq.jobs.store import JobStore

REDIS_URL = os.environ.get("POSTERQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
ROOT = Path(__file__).resolve().parents[2]
KIB = 1024


def settings_env(settings: Settings) -> dict[str, str]:
    """The POSTERQ_* variables that reproduce settings in another process."""
    env = {}
    for spec in fields(Settings):
        value = getattr(settings, spec.name)
        if spec.name == "data_roots":
            value = os.pathsep.join(str(p) for p in value)
        env["POSTERQ_" + spec.name.upper()] = str(value)
    return env


@pytest.fixture(scope="session")
def redis_client():
    """A client of the test database; the session fails at once if Redis does not answer."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"the service tests need Redis at {REDIS_URL} (.ci/run starts one): {exc}")
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(autouse=True)
def clean_redis(redis_client):
    """Every service test starts and ends with an empty database."""
    redis_client.flushdb()
    yield
    redis_client.flushdb()


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """The one folder directory jobs may read."""
    return tmp_path_factory.mktemp("data-root").resolve()


@pytest.fixture(scope="session")
def service_settings(tiny_bundle, data_root) -> Settings:
    """Small limits and short timeouts, so that the suite runs in seconds on two cores."""
    return Settings.from_env(
        {}, redis_url=REDIS_URL, key_prefix="pqtest", queue="pqtest", model=str(tiny_bundle),
        batch_size=4, max_batch_wait=0.05, threads=1, data_roots=(data_root,),
        max_request_bytes=2 * 1024 * KIB, max_posters_per_job=80, max_file_bytes=200 * KIB,
        max_zip_bytes=4 * 1024 * KIB, result_ttl=600, upload_ttl=300, max_redeliveries=2,
        visibility_timeout=4, restore_interval=1, heartbeat_interval=0.5, analysis_timeout=5)


@pytest.fixture
def store(service_settings, clean_redis) -> JobStore:
    """A job store on the test database."""
    return JobStore.from_settings(service_settings)


def _terminate(process: subprocess.Popen) -> None:
    # SIGTERM (a warm shutdown), then SIGKILL whatever is left of its process group.
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


class WorkerProcess:
    """`posterq worker` in its own process group, logging to a file."""

    def __init__(self, hostname: str, settings: Settings, log_dir: Path, concurrency: int = 1):
        self.hostname = hostname
        self.log_path = log_dir / f"{hostname.replace('@', '_')}.log"
        env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "posterq.cli", "worker", "--concurrency", str(concurrency),
             "--hostname", hostname, "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.store = JobStore.from_settings(settings)

    def wait_ready(self, timeout: float = 60) -> "WorkerProcess":
        """Wait for the worker's first heartbeat."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.hostname in self.store.stats.workers():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"worker {self.hostname} did not start:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once: no clean shutdown, no acks."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Ask for a warm shutdown; kill whatever is left after a few seconds."""
        _terminate(self.process)
        self._log.close()

    def log(self) -> str:
        """The worker's output so far."""
        return self.log_path.read_text(errors="replace")[-4000:]


def _worker_factory(settings: Settings, log_dir: Path):
    started: list[WorkerProcess] = []

    def start(hostname: str, concurrency: int = 1, wait: bool = True) -> WorkerProcess:
        worker = WorkerProcess(hostname, settings, log_dir, concurrency)
        started.append(worker)
        return worker.wait_ready() if wait else worker

    return start, started


@pytest.fixture(scope="module")
def start_worker(service_settings, tmp_path_factory):
    """Factory: start a worker subprocess, stopped when the module ends."""
    start, started = _worker_factory(service_settings, tmp_path_factory.mktemp("worker-logs"))
    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def spawn_worker(service_settings, tmp_path):
    """Factory: start a worker subprocess, stopped when the test ends."""
    start, started = _worker_factory(service_settings, tmp_path)
    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def spawn_worker_with(tmp_path):
    """Factory: start a worker subprocess with other settings, stopped when the test ends."""
    started: list[WorkerProcess] = []

    def start(hostname: str, settings: Settings, concurrency: int = 1) -> WorkerProcess:
        started.append(WorkerProcess(hostname, settings, tmp_path, concurrency))
        return started[-1].wait_ready()

    yield start
    for worker in started:
        worker.stop()


class Api:
    """The API app served over HTTP in a thread, with a requests session."""

    def __init__(self, settings: Settings):
        from api import create_app

        self.app = create_app({"SETTINGS": settings})
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.http = requests.Session()

    def get(self, path: str, **kwargs) -> requests.Response:
        """GET a path."""
        return self.http.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        """POST to a path."""
        return self.http.post(self.url + path, timeout=30, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        """DELETE a path."""
        return self.http.delete(self.url + path, timeout=30, **kwargs)

    def wait(self, job_id: str, timeout: float = 60, until=("done", "failed", "cancelled")) -> dict:
        """Poll a job until its status is one of `until`; return it with every result."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/jobs/{job_id}", params={"limit": 1000}).json()
            if job["status"] in until:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job}")

    def close(self) -> None:
        """Stop serving."""
        self.http.close()
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture(scope="session")
def api(service_settings):
    """The API on a free local port."""
    server = Api(service_settings)
    yield server
    server.close()


@pytest.fixture(scope="session")
def classifier(tiny_bundle):
    """A Classifier on the tiny bundle, to compare the service's answers with."""
    from posterq.classifier import Classifier

    return Classifier(tiny_bundle, num_threads=1)


@pytest.fixture
def make_api():
    """Factory: another API over HTTP with other settings, closed when the test ends."""
    made: list[Api] = []

    def make(settings: Settings) -> Api:
        made.append(Api(settings))
        return made[-1]

    yield make
    for server in made:
        server.close()


class ApiProcess:
    """`posterq -v api` (gunicorn, as in production) in its own process group, logging to a file."""

    def __init__(self, settings: Settings, log_path: Path):
        with socket.socket() as probe:  # a free port (gunicorn reports no port it picked itself)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
        self._log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "posterq.cli", "-v", "api", "--port", str(self.port), "--workers", "1",
             "--threads", "4"], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> "ApiProcess":
        """Wait until /healthz answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise AssertionError(f"posterq api did not start:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM (gunicorn's graceful stop), then SIGKILL whatever is left."""
        _terminate(self.process)
        self._log.close()

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def serve_api(tmp_path):
    """Factory: `posterq api` as a real gunicorn process with these settings, stopped when the test ends."""
    started: list[ApiProcess] = []

    def serve(settings: Settings, wait: bool = True) -> ApiProcess:
        started.append(ApiProcess(settings, tmp_path / f"api-{len(started)}.log"))
        return started[-1].wait_ready() if wait else started[-1]

    yield serve
    for server in started:
        server.stop()
