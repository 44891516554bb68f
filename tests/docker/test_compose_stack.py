"""The container stack run for real: the image built, three worker containers sharing jobs, one
killed, Redis restarted and PostgreSQL stopped and started mid-job, and `down -v` leaving nothing.

    .venv/bin/python -m pytest tests/docker -s      # -s shows the figures at the end
    POSTERQ_DOCKER_REPORT=docker-figures.json ...   # and writes them as JSON

docker-compose.yml with docker-compose.local.yml: the image is built FROM the local Debian base
(scripts/docker_base.sh, run here when the base is missing) and every service runs on the host's
network on loopback ports (the API on 8090, Redis on 6390, PostgreSQL on 5490, or free ones when
those are taken), so a Redis on 6379 or a PostgreSQL on 5432 is never touched and no traffic
leaves 127.0.0.1. PostgreSQL asks for a password made for the run (the path with a password is
the one with more to go wrong: it must reach the API and every worker). It needs a Docker daemon
(.ci/run installs docker.io and starts one); where none answers, the tests say why and skip.
The tests run in order on one stack (module scope), each a step of one story.
"""

import json
import os
import secrets
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
import redis
import requests
import yaml
from harness import assert_exactly_once, free_port, listening, wait_for_job
from samples import poster_bytes

from posterq.jobs.database import SCHEMA_VERSION
from posterq.jobs.keys import Keys

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "posterqtest"  # not the folder's name, so a stack a person started is left alone
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.local.yml")
IMAGE = "posterq:local"
WORKERS = 3
UPLOAD_POSTERS = 300
DIRECTORY_POSTERS = 60
JOB_TIMEOUT = 600  # seconds; far above a run on two contended cores (timings: docs/docker.md)
# Small and quick where the defaults wait for production-sized batches: one process and one
# interpreter thread per worker container (three containers on two cores), a killed batch back in
# seconds, not ten minutes.
STACK_SETTINGS = {
    "POSTERQ_WORKER_PROCESSES": "1",
    "POSTERQ_THREADS": "1",
    "POSTERQ_SOLO_THREADS": "1",
    "POSTERQ_VISIBILITY_TIMEOUT": "45",
    "POSTERQ_RESTORE_INTERVAL": "2",
    "POSTERQ_BATCH_TIME_LIMIT": "30",
    "POSTERQ_SWEEP_INTERVAL": "2",
}
# Seconds PostgreSQL stays stopped mid-job: longer than a worker waits for a connection
# (posterq.jobs.database.CONNECT_TIMEOUT, 5 s), so that batches meet the outage.
POSTGRES_OUTAGE = 8
FIGURES: dict = {}
FINISHED: dict[str, int] = {}  # job id: posters, for each job whose rows were checked in PostgreSQL


def _run(args, timeout=900, env=None, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _why_no_docker() -> str | None:
    """None when a Docker daemon and Compose answer; else why not (with dockerd's log, if CI kept one)."""
    if shutil.which("docker") is None:
        return "the docker command is not installed (.ci/run installs Debian's docker.io)"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        why = f"no Docker daemon answers: {info.stderr.strip()[-500:]}"
        log = os.environ.get("POSTERQ_DOCKERD_LOG")
        if log and Path(log).is_file():
            lines = Path(log).read_text(errors="replace").strip().splitlines()
            errors = [line for line in lines if "level=error" in line or "level=fatal" in line]
            why += f"\ndockerd's log ({log}) says:\n" + "\n".join((errors or lines)[-6:])
        return why
    if _compose_command() is None:
        return "neither `docker compose` nor docker-compose is installed"
    return None


def _compose_command() -> list[str] | None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def _each_poster_once_and_ok(job: dict, total: int) -> None:
    assert_exactly_once(job, job["results"], total)
    errors = Counter(row["error"]["code"] for row in job["results"] if row["error"])
    assert not errors and job["failed"] == 0, errors


class Stack:
    """The compose project: its commands, its containers and the API over HTTP."""

    def __init__(self, posters: Path, tmp: Path):
        self.compose_cmd = _compose_command()
        self.api_port = free_port(int(os.environ.get("POSTERQ_LOCAL_API_PORT", 8090)))
        self.redis_port = free_port(int(os.environ.get("POSTERQ_LOCAL_REDIS_PORT", 6390)))
        self.postgres_port = free_port(int(os.environ.get("POSTERQ_LOCAL_POSTGRES_PORT", 5490)))
        self.postgres_password = secrets.token_urlsafe(16)
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.posters = posters
        self.tmp = tmp
        self.env = {**os.environ, **STACK_SETTINGS, "POSTERS_DIR": str(posters),
                    "POSTERQ_LOCAL_API_PORT": str(self.api_port),
                    "POSTERQ_LOCAL_REDIS_PORT": str(self.redis_port),
                    "POSTERQ_LOCAL_POSTGRES_PORT": str(self.postgres_port),
                    "POSTERQ_POSTGRES_PASSWORD": self.postgres_password,
                    "POSTERQ_POSTGRES_AUTH": "scram-sha-256",
                    # Compose 1.29 builds through docker-py, the plugin through the CLI: neither
                    # needs BuildKit, which a client without buildx cannot use.
                    "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}
        self.http = requests.Session()
        self.down_done = False

    def compose(self, *args, timeout=900, check=True) -> subprocess.CompletedProcess:
        """Run a compose command on this project."""
        files = [arg for name in COMPOSE_FILES for arg in ("-f", name)]
        return _run([*self.compose_cmd, *files, "-p", PROJECT, *args], timeout, self.env, check)

    def containers(self, service: str, all_states: bool = False) -> list[str]:
        """Full ids of the service's containers (running ones unless all_states)."""
        args = ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={PROJECT}",
                "--filter", f"label=com.docker.compose.service={service}"]
        return _run(args + (["-a"] if all_states else [])).stdout.split()

    def worker_name(self, container_id: str) -> str:
        """The name a worker container gives itself (docker-compose.local.yml)."""
        return f"posterq-1@{container_id[:12]}"

    def get(self, path: str, **params) -> dict:
        """GET a path; the JSON answer."""
        response = self.http.get(self.url + path, params=params, timeout=60)
        response.raise_for_status()
        return response.json()

    def submit_uploads(self, seeds: range) -> str:
        """An upload job of generated posters (distinct per seed); its id."""
        files = [("files", (f"poster_{seed}.{('jpg', 'png')[seed % 2]}",
                            poster_bytes(seed, ("JPEG", "PNG")[seed % 2], (40 + seed % 23, 60 + seed % 31)),
                            ("image/jpeg", "image/png")[seed % 2])) for seed in seeds]
        response = self.http.post(self.url + "/jobs", files=files, timeout=120)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id: str, wait: int = 0) -> dict:
        """The job with every result."""
        return self.get(f"/jobs/{job_id}", limit=1000, wait=wait)

    def wait(self, job_id: str, timeout: float = JOB_TIMEOUT) -> dict:
        """Poll until the job is final, riding out an API or Redis that does not answer for a while."""
        return wait_for_job(self.url, job_id, timeout=timeout, wait=10, interval=1, http=self.http,
                            ride_out=True, explain=self.logs)

    def wait_done_at_least(self, job_id: str, count: int, timeout: float = JOB_TIMEOUT) -> dict:
        """Poll until the job has `count` results (and is still running); the job then."""
        job = wait_for_job(self.url, job_id, until=lambda job: job["done"] + job["failed"] >= count,
                           timeout=timeout, interval=0.2, http=self.http, explain=self.logs)
        assert job["status"] == "running", "the job finished before the step could run mid-job"
        return job

    def wait_ready(self, workers: int, timeout: float = 300) -> list[str]:
        """Wait until /readyz lists `workers` workers; their names."""
        deadline = time.monotonic() + timeout
        answer = None
        while time.monotonic() < deadline:
            try:
                answer = self.http.get(self.url + "/readyz", timeout=10).json()
                if len(answer["workers"]) >= workers:
                    return answer["workers"]
            except (requests.RequestException, ValueError) as exc:
                answer = repr(exc)
            time.sleep(0.5)
        raise AssertionError(f"/readyz after {timeout} s: {answer}\n{self.logs()}")

    def counters(self) -> dict[str, int]:
        """How lost work came back so far: Celery redeliveries, posters the sweep gave back, its tokens."""
        client = redis.Redis(port=self.redis_port, socket_timeout=10)
        try:
            stats = client.hgetall(Keys("posterq").stats)
        finally:
            client.close()
        return {name: int(float(stats.get(name.encode(), 0)))
                for name in ("redeliveries", "sweep_given_back", "sweep_tokens")}

    @staticmethod
    def since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
        """Counter increases from before to after."""
        return {name: after[name] - before[name] for name in after}

    def database(self, password: str | None = None) -> psycopg.Connection:
        """A connection to the stack's PostgreSQL, as the API and the workers make it."""
        password = self.postgres_password if password is None else password
        return psycopg.connect(host="127.0.0.1", port=self.postgres_port, user="posterq", dbname="posterq",
                               password=password, connect_timeout=10, autocommit=True)

    def rows(self, job_id: str) -> dict:
        """The job's rows in PostgreSQL: result rows, distinct indexes, by status, and the job row."""
        with self.database() as connection:
            count, distinct = connection.execute(
                "SELECT count(*), count(DISTINCT idx) FROM posterq_results WHERE job_id = %s",
                (job_id,)).fetchone()
            statuses = dict(connection.execute(
                "SELECT status, count(*) FROM posterq_results WHERE job_id = %s GROUP BY status",
                (job_id,)).fetchall())
            job = connection.execute("SELECT status, total, done, failed FROM posterq_jobs WHERE id = %s",
                                     (job_id,)).fetchone()
        return {"results": count, "indexes": distinct, "statuses": statuses,
                "job": dict(zip(("status", "total", "done", "failed"), job, strict=True)) if job else None}

    def assert_one_row_each(self, job_id: str, total: int) -> None:
        """PostgreSQL holds one `ok` result row per poster of the job, and the job row agrees."""
        rows = self.rows(job_id)
        FINISHED[job_id] = total
        assert rows == {"results": total, "indexes": total, "statuses": {"ok": total},
                        "job": {"status": "done", "total": total, "done": total, "failed": 0}}, rows

    def logs(self) -> str:
        """The end of every service's log, for failure messages (all of it goes to a file)."""
        result = self.compose("logs", "--no-color", "--timestamps", timeout=120, check=False)
        path = self.tmp / "compose.log"
        path.write_text(result.stdout + result.stderr)
        return f"(compose logs in {path})\n" + result.stdout[-4000:]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack built and up with three worker containers; `down -v` at the end in any case."""
    why = _why_no_docker()
    if why:
        pytest.skip(f"the container tests need Docker: {why}")
    started = time.monotonic()
    base = _run([str(ROOT / "scripts" / "docker_base.sh")], timeout=1200)
    FIGURES["base_images_s"] = round(time.monotonic() - started, 1)
    FIGURES["base_images"] = base.stderr.strip().splitlines()

    posters = tmp_path_factory.mktemp("posters")
    # The containers run as uid 10001: the bind-mounted folder must be readable by anyone.
    folder = posters / "directory-job"
    folder.mkdir()
    for seed in range(DIRECTORY_POSTERS):
        (folder / f"poster_{seed:03d}.jpg").write_bytes(poster_bytes(50_000 + seed, size=(48, 72)))
    for path in (posters, folder):
        path.chmod(0o755)
    stack = Stack(posters, tmp_path_factory.mktemp("compose"))
    stack.compose("down", "-v", "--remove-orphans", check=False)  # what a crashed run left

    started = time.monotonic()
    stack.compose("build", "api-local", timeout=1800)
    FIGURES["build_s"] = round(time.monotonic() - started, 1)
    size = int(_run(["docker", "image", "inspect", IMAGE, "--format", "{{.Size}}"]).stdout)
    FIGURES["image_mb"] = round(size / 1e6)
    # The build stage and the image a rebuild replaced stay behind untagged: remove them (only
    # untagged images of this Dockerfile, by its label), or every run would leave an image's worth of disk.
    _run(["docker", "image", "prune", "-f", "--filter", "label=posterq.image"])

    started = time.monotonic()
    try:
        stack.compose("up", "-d", "--no-build", "--scale", f"worker={WORKERS}")
        stack.wait_ready(WORKERS)
        FIGURES["up_until_ready_s"] = round(time.monotonic() - started, 1)
        yield stack
    finally:
        if not stack.down_done:
            stack.logs()
            stack.compose("down", "-v", "--remove-orphans", check=False)
        stack.http.close()


def test_the_local_api_gets_the_same_settings_as_the_workers():
    """docker-compose.local.yml repeats the base file's environment for api-local: the same names."""
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    local = yaml.safe_load((ROOT / "docker-compose.local.yml").read_text())
    assert set(base["x-posterq-env"]) == set(local["x-api-local-env"])
    for name in ("POSTERQ_REDIS_URL", "POSTERQ_DATABASE_URL"):
        assert local["x-api-local-env"][name] == local["x-local-env"][name]
    assert base["x-posterq-env"]["POSTERQ_DATABASE_URL"].startswith("postgresql://")


def test_jobs_are_shared_by_worker_containers_each_poster_once(stack):
    """A 300-poster upload job and a directory job, at once: both finish, on several containers."""
    workers = {stack.worker_name(cid): cid for cid in stack.containers("worker")}
    assert len(workers) == WORKERS and set(stack.wait_ready(WORKERS)) == set(workers)
    started = time.monotonic()
    upload = stack.submit_uploads(range(UPLOAD_POSTERS))
    directory = stack.http.post(stack.url + "/jobs", json={"directory": "/data/posters/directory-job"},
                                timeout=60)
    assert directory.status_code == 202, directory.text
    directory = directory.json()["id"]
    for job_id, total, name in ((upload, UPLOAD_POSTERS, "upload_job"),
                                (directory, DIRECTORY_POSTERS, "directory_job")):
        job = stack.wait(job_id)
        _each_poster_once_and_ok(job, total)
        stack.assert_one_row_each(job_id, total)
        by_worker = Counter(row["worker"] for row in job["results"])
        assert set(by_worker) <= set(workers), (by_worker, workers)
        FIGURES[name] = {"posters": total, "wall_s": round(time.monotonic() - started, 1),
                         "job_elapsed_s": job["elapsed_s"], "posters_per_s": job["posters_per_second"],
                         "by_worker": dict(by_worker)}
    # Horizontal scale: separate containers, each with its own name, shared the upload job.
    assert len(FIGURES["upload_job"]["by_worker"]) >= 2, FIGURES["upload_job"]


def test_the_database_is_postgresql_and_asks_for_the_password(stack):
    """The API reads the stack's PostgreSQL (its schema migrated once); a wrong password is refused."""
    assert stack.get("/readyz")["database"] is True
    with stack.database() as connection:
        versions = [row[0] for row in connection.execute("SELECT version FROM posterq_schema")]
        server = connection.execute("SHOW server_version").fetchone()[0]
    assert versions == list(range(1, SCHEMA_VERSION + 1)), versions
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        stack.database(password="not-" + stack.postgres_password).close()
    FIGURES["postgres"] = {"server_version": server, "schema_versions": versions}


def test_a_killed_worker_container_loses_nothing(stack):
    """`docker kill` on a worker container that is classifying: the job still finishes, each poster once."""
    job_id = stack.submit_uploads(range(10_000, 10_000 + UPLOAD_POSTERS))
    started = time.monotonic()
    job = stack.wait_done_at_least(job_id, 30)
    # The victim: the container that has written the most of this job so far (it is busy with it).
    live = {stack.worker_name(cid): cid for cid in stack.containers("worker")}
    # (Posters not classified yet are listed too, as pending, with no worker.)
    written = Counter(row.get("worker") for row in job["results"] if row.get("worker") in live)
    victim_name, _ = written.most_common(1)[0]
    victim = live[victim_name]
    counters = stack.counters()
    _run(["docker", "kill", victim])
    at_kill = stack.job(job_id)
    killed_after = round(time.monotonic() - started, 1)

    job = stack.wait(job_id)
    _each_poster_once_and_ok(job, UPLOAD_POSTERS)
    stack.assert_one_row_each(job_id, UPLOAD_POSTERS)
    by_worker = Counter(row["worker"] for row in job["results"])
    after_kill = job["done"] - (at_kill["done"] + at_kill["failed"])
    assert after_kill > 0 and set(by_worker) - {victim_name}, by_worker
    state = json.loads(_run(["docker", "inspect", victim, "--format", "{{json .State}}"]).stdout)
    restart_count = int(_run(["docker", "inspect", victim, "--format", "{{.RestartCount}}"]).stdout)
    FIGURES["killed_worker"] = {
        "posters": UPLOAD_POSTERS, "killed": victim_name, "killed_after_s": killed_after,
        "results_at_kill": at_kill["done"] + at_kill["failed"],
        "wall_s": round(time.monotonic() - started, 1),
        "job_elapsed_s": job["elapsed_s"], "by_worker": dict(by_worker),
        "recovered_by": stack.since(counters, stack.counters()),
        "victim_state_after": state["Status"], "victim_restart_count": restart_count}


def test_a_redis_restart_mid_job_loses_no_accepted_poster(stack):
    """Redis restarted mid-job (`docker restart`): its append-only volume keeps the job; each poster once."""
    job_id = stack.submit_uploads(range(20_000, 20_000 + UPLOAD_POSTERS))
    started = time.monotonic()
    at_restart = stack.wait_done_at_least(job_id, 30)
    (container,) = stack.containers("redis")
    counters = stack.counters()
    restart_started = time.monotonic()
    _run(["docker", "restart", "--time", "10", container])
    restart_s = round(time.monotonic() - restart_started, 1)
    appendonly = _run(["docker", "exec", container, "redis-cli", "-p", str(stack.redis_port),
                       "config", "get", "appendonly"]).stdout.split()
    assert appendonly[-1] == "yes", appendonly

    job = stack.wait(job_id)
    _each_poster_once_and_ok(job, UPLOAD_POSTERS)
    stack.assert_one_row_each(job_id, UPLOAD_POSTERS)
    FIGURES["redis_restart"] = {
        "posters": UPLOAD_POSTERS, "results_at_restart": at_restart["done"] + at_restart["failed"],
        "restart_s": restart_s, "wall_s": round(time.monotonic() - started, 1),
        "after_restart_s": round(time.monotonic() - restart_started, 1), "job_elapsed_s": job["elapsed_s"],
        "recovered_by": stack.since(counters, stack.counters()),
        "by_worker": dict(Counter(row["worker"] for row in job["results"]))}


def test_postgres_down_mid_job_loses_no_result(stack):
    """PostgreSQL stopped mid-job for longer than a connection waits, then started: workers hold
    their batches and try again; one row a poster, and the earlier jobs' rows kept on the volume."""
    job_id = stack.submit_uploads(range(30_000, 30_000 + UPLOAD_POSTERS))
    started = time.monotonic()
    at_stop = stack.wait_done_at_least(job_id, 30)
    (container,) = stack.containers("postgres")
    counters = stack.counters()
    stop_started = time.monotonic()
    _run(["docker", "stop", "--time", "10", container])
    stop_s = round(time.monotonic() - stop_started, 1)
    time.sleep(POSTGRES_OUTAGE)
    readyz = stack.http.get(stack.url + "/readyz", timeout=60)
    _run(["docker", "start", container])
    down_s = round(time.monotonic() - stop_started, 1)
    assert readyz.status_code == 503 and readyz.json()["database"] is False, readyz.text

    job = stack.wait(job_id)
    done_after_stop_s = round(time.monotonic() - stop_started, 1)
    _each_poster_once_and_ok(job, UPLOAD_POSTERS)
    stack.assert_one_row_each(job_id, UPLOAD_POSTERS)
    earlier = {earlier_id: total for earlier_id, total in FINISHED.items() if earlier_id != job_id}
    assert earlier, "no earlier job to look for"
    for earlier_id, total in earlier.items():
        stack.assert_one_row_each(earlier_id, total)
    # The outage was met: batches found the database down and were tried again (tasks.py logs each).
    worker_logs = stack.compose("logs", "--no-color", "worker", timeout=120).stdout
    retried = sum("the results database cannot be reached" in line and "trying again" in line
                  for line in worker_logs.splitlines())
    assert retried > 0, "no batch met the outage"
    FIGURES["postgres_down"] = {
        "posters": UPLOAD_POSTERS, "results_at_stop": at_stop["done"] + at_stop["failed"],
        "stop_s": stop_s, "down_s": down_s, "wall_s": round(time.monotonic() - started, 1),
        "done_after_stop_s": done_after_stop_s, "job_elapsed_s": job["elapsed_s"],
        "batches_retried": retried, "recovered_by": stack.since(counters, stack.counters()),
        "by_worker": dict(Counter(row["worker"] for row in job["results"]))}


def test_down_leaves_nothing(stack):
    """`down -v`: no container, volume or network of the project is left, and nothing listens."""
    started = time.monotonic()
    stack.compose("down", "-v", "--remove-orphans", timeout=300)
    stack.down_done = True
    FIGURES["down_s"] = round(time.monotonic() - started, 1)
    label = f"label=com.docker.compose.project={PROJECT}"
    assert _run(["docker", "ps", "-aq", "--filter", label]).stdout.split() == []
    assert _run(["docker", "volume", "ls", "-q", "--filter", label]).stdout.split() == []
    assert _run(["docker", "network", "ls", "-q", "--filter", label]).stdout.split() == []
    assert not any(listening(port) for port in (stack.api_port, stack.redis_port, stack.postgres_port))

    report = json.dumps(FIGURES, indent=2)
    print(f"\ncontainer stack figures:\n{report}")
    if os.environ.get("POSTERQ_DOCKER_REPORT"):
        Path(os.environ["POSTERQ_DOCKER_REPORT"]).write_text(report + "\n")
