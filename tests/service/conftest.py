"""Fixtures for the queue service: real Redis (a dedicated database, flushed around each test),
real Celery worker subprocesses (`posterq worker`), the API served over real HTTP, and the page's
headless browser. The processes and servers themselves are tests/harness.py's (bench/ uses them too).

POSTERQ_TEST_REDIS_URL picks the Redis database (default redis://127.0.0.1:6379/13), and
POSTERQ_TEST_DATABASE_URL the PostgreSQL database (default posterq_test on 127.0.0.1:5432,
created when missing, emptied around each test).
"""

import os
from pathlib import Path

import pytest
import redis
from harness import ApiProcess, AppServer, WorkerProcess, empty_database, ensure_database
from samples import rewrite_meta

from posterq import gate
from posterq.config import Settings
from posterq.jobs.database import Database
from posterq.jobs.store import JobStore

from .browsing import CHROMIUM, CHROMIUM_ARGS

REDIS_URL = os.environ.get("POSTERQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
DATABASE_URL = os.environ.get("POSTERQ_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/posterq_test")
KIB = 1024


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


@pytest.fixture(scope="session")
def database():
    """The tests' PostgreSQL database, created and migrated; the session fails at once without it."""
    try:
        ensure_database(DATABASE_URL)
    except Exception as exc:
        pytest.fail(f"the service tests need PostgreSQL at {DATABASE_URL} (.ci/run starts one): {exc}")
    database = Database.shared(DATABASE_URL)
    database.migrate()
    return database


@pytest.fixture(autouse=True)
def clean_redis(redis_client, database):
    """Every service test starts and ends with an empty Redis database and no jobs in PostgreSQL."""
    redis_client.flushdb()
    empty_database(database)
    yield
    redis_client.flushdb()
    empty_database(database)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """The one folder directory jobs may read."""
    return tmp_path_factory.mktemp("data-root").resolve()


@pytest.fixture(scope="session")
def service_settings(tiny_bundle, data_root) -> Settings:
    """Small limits and short timeouts, so that the suite runs in seconds on two cores.

    No timeout here ends work a busy machine is only slow to do: POST /analysis/ waits 120 s for
    its poster (a test of the 504 sets its own timeout, with no worker at all).
    """
    return Settings.from_env(
        {}, redis_url=REDIS_URL, database_url=DATABASE_URL, key_prefix="pqtest", queue="pqtest",
        model=str(tiny_bundle),
        batch_size=4, max_batch_wait=0.05, threads=1, data_roots=(data_root,), job_window=40,
        max_request_bytes=2 * 1024 * KIB, max_posters_per_job=80, max_file_bytes=200 * KIB,
        max_zip_bytes=4 * 1024 * KIB, result_ttl=600, upload_ttl=300, max_redeliveries=2,
        visibility_timeout=4, restore_interval=1, heartbeat_interval=0.5, analysis_timeout=120)


@pytest.fixture
def store(service_settings, clean_redis) -> JobStore:
    """A job store on the test database; its Redis connections are closed when the test ends."""
    store = JobStore.from_settings(service_settings)
    yield store
    # Left to the garbage collector, an open socket is a ResourceWarning, an error at the session's end.
    store.client.close()


def _worker_factory(default: Settings, log_dir: Path):
    started: list[WorkerProcess] = []

    def start(hostname: str, concurrency: int = 1, wait: bool = True, settings: Settings | None = None):
        worker = WorkerProcess(hostname, settings or default, log_dir, concurrency)
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
def spawn_worker_with(spawn_worker):
    """Factory: start a worker subprocess with other settings, stopped when the test ends."""

    def start(hostname: str, settings: Settings, concurrency: int = 1) -> WorkerProcess:
        return spawn_worker(hostname, concurrency, settings=settings)

    return start


@pytest.fixture
def new_bundle(copy_bundle):
    """The tiny bundle as version 0.0.2 (the same weights: a second model for rollouts and reruns)."""
    folder = copy_bundle("tiny-0.0.2")
    rewrite_meta(folder, version="0.0.2")
    return folder


@pytest.fixture
def gated_worker(spawn_worker_with, service_settings, tmp_path):
    """Factory: a worker (settings: the service's, or given) whose batches wait at a closed gate.

    Returns (worker, gates): the gate folder (posterq.gate) with the batch gate closed, so the
    worker's batches wait once they hold their posters, until the test removes gates / BATCH.
    """

    def start(hostname: str, settings: Settings | None = None) -> tuple[WorkerProcess, Path]:
        gates = tmp_path / "gates"
        gates.mkdir()
        (gates / gate.BATCH).touch()
        worker = spawn_worker_with(hostname, (settings or service_settings).replace(test_gate=str(gates)))
        return worker, gates

    return start


def _api(settings: Settings) -> AppServer:
    from posterq.api import create_app

    return AppServer(create_app({"SETTINGS": settings}))


@pytest.fixture(scope="session")
def api(service_settings):
    """The API on a free local port."""
    server = _api(service_settings)
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
    made: list[AppServer] = []

    def make(settings: Settings) -> AppServer:
        made.append(_api(settings))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture
def serve_api(tmp_path):
    """Factory: `posterq api` as a real gunicorn process with these settings, stopped when the test ends."""
    started: list[ApiProcess] = []

    def serve(settings: Settings, wait: bool = True) -> ApiProcess:
        log_path = tmp_path / f"api-{len(started)}.log"
        started.append(ApiProcess(settings, log_path, "--workers", "1", "--threads", "4", verbose=True))
        return started[-1].wait_ready() if wait else started[-1]

    yield serve
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless; the tests fail (not skip) without it: CI installs it."""
    if not CHROMIUM.is_file():
        pytest.fail(f"the page tests need Chromium at {CHROMIUM}: apt-get install -y --no-install-recommends "
                    "chromium (.ci/run does), or point POSTERQ_CHROMIUM at one")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the page tests need Playwright for Python: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
