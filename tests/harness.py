"""The service harness of the tests, tests/docker and bench/: real processes, real Redis, real HTTP.

    from harness import ApiProcess, WorkerProcess, assert_exactly_once, wait_for_job

    worker = WorkerProcess("alpha@test", settings, log_dir).wait_ready()
    api = ApiProcess(settings, log_dir / "api.log").wait_ready()
    job = wait_for_job(api.url, job_id, timeout=120)
    assert_exactly_once(job, job["results"])

Like flask.testing or celery.contrib.testing, it imports no test framework: a failure raises
AssertionError, which pytest reports as a failed test and a benchmark as a crash. It lives in
tests/, outside the wheel: the tests import it as `harness` (tests/ is on sys.path under pytest),
bench/ as `tests.harness` (from the repository root). It needs the `service` extra (requests, redis).
"""

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields
from pathlib import Path

import redis
import requests

from posterq.client import ServiceClient
from posterq.config import Settings
from posterq.exceptions import PosterqError
from posterq.jobs.keys import JobStatus, ResultStatus

#: Where the posterq, api and worker packages are imported from: the checkout this file is in.
SOURCE_ROOT = Path(__file__).resolve().parents[1]
#: The API's largest page of results.
PAGE = 1000


# ---------------------------------------------------------------------------------------------
# Ports and settings
# ---------------------------------------------------------------------------------------------


def free_port(preferred: int | None = None) -> int:
    """preferred when nothing listens on it on loopback, else a port nobody listens on now."""
    if preferred is not None and not listening(preferred):
        return preferred
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    """True when something accepts connections on this loopback port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def settings_env(settings: Settings) -> dict[str, str]:
    """The POSTERQ_* variables that reproduce settings in another process."""
    env = {}
    for spec in fields(Settings):
        value = getattr(settings, spec.name)
        if isinstance(value, tuple):  # folders: data_roots, output_roots
            value = os.pathsep.join(str(p) for p in value)
        env["POSTERQ_" + spec.name.upper()] = str(value)
    return env


# ---------------------------------------------------------------------------------------------
# Processes: `posterq worker`, `posterq api`, a private redis-server
# ---------------------------------------------------------------------------------------------


class ServiceProcess:
    """`python -m MODULE ARGS` (posterq's CLI unless told), in its own process group, logging to a file.

    settings: passed on as POSTERQ_* variables; cpus: pin the process (and the children it forks)
    to those CPUs, like `taskset -c`; source_root: the checkout whose code it runs (its cwd and
    PYTHONPATH, ahead of the editable install), for example a worktree of an older commit; prefix:
    a command that runs it, for example ("ip", "netns", "exec", "NAME") for another network namespace.
    """

    def __init__(self, args: list[str], settings: Settings | None, log_path: Path,
                 cpus: set[int] | None = None, module: str = "posterq.cli",
                 source_root: Path = SOURCE_ROOT, prefix: Sequence[str] = ()):
        self.log_path = Path(log_path)
        env = {**os.environ, **(settings_env(settings) if settings else {}), "PYTHONPATH": str(source_root)}
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", module, *args], cwd=source_root, env=env, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=pin)

    @property
    def pid(self) -> int:
        """The process id (also its process group's)."""
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the process group at once: no clean shutdown, no acks."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL whatever is left of the process group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self._log.close()

    def log(self, tail: int | None = 4000) -> str:
        """What the process wrote so far: its last `tail` characters, or all of it."""
        text = self.log_path.read_text(errors="replace")
        return text[-tail:] if tail else text

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """Poll ready() until true (an HTTP or Redis error is a no); fail if the process ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if ready():
                    return
            except (PosterqError, requests.RequestException, redis.RedisError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"{what} did not start:\n{self.log()}")


class WorkerProcess(ServiceProcess):
    """`posterq worker` (concurrency: pool processes; None is the worker's default)."""

    def __init__(self, hostname: str, settings: Settings, log_dir: Path, concurrency: int | None = 1,
                 loglevel: str = "INFO", cpus: set[int] | None = None, source_root: Path = SOURCE_ROOT,
                 prefix: Sequence[str] = ()):
        self.hostname = hostname
        self.settings = settings
        pool = ["--concurrency", str(concurrency)] if concurrency else []
        super().__init__(["worker", *pool, "--hostname", hostname, "--loglevel", loglevel], settings,
                         Path(log_dir) / f"{hostname.replace('@', '_')}.log", cpus, source_root=source_root,
                         prefix=prefix)

    @functools.cached_property
    def store(self):
        """A JobStore on the worker's Redis and key prefix (its heartbeats, its stats)."""
        from posterq.jobs.store import JobStore

        return JobStore.from_settings(self.settings)

    def wait_ready(self, timeout: float = 60) -> "WorkerProcess":
        """Wait for the worker's first heartbeat in Redis."""
        self.wait_until(lambda: self.hostname in self.store.stats.workers(), f"worker {self.hostname}",
                        timeout)
        return self

    def stop(self, timeout: float = 10) -> None:
        """A warm shutdown, then SIGKILL whatever is left; the store's connections close too."""
        super().stop(timeout)
        if "store" in self.__dict__:
            self.store.client.close()


class ApiProcess(ServiceProcess):
    """`posterq [-v] api --port N ARGS` (gunicorn, as in production) on a free port.

    host: the address it listens on and url names (0.0.0.0 listens everywhere, url says 127.0.0.1).
    """

    def __init__(self, settings: Settings, log_path: Path, *args: str, verbose: bool = False,
                 source_root: Path = SOURCE_ROOT, host: str = "127.0.0.1", prefix: Sequence[str] = ()):
        self.port = free_port()  # chosen here: gunicorn reports no port it picked itself
        self.url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}"
        args = ("--host", host, "--port", str(self.port), *args)
        super().__init__([*(["-v"] if verbose else []), "api", *args], settings, log_path,
                         source_root=source_root, prefix=prefix)

    def wait_ready(self, timeout: float = 60) -> "ApiProcess":
        """Wait until /healthz answers."""
        with service_client(self.url) as client:
            self.wait_until(lambda: client.request("GET", "/healthz", timeout=2).status_code == 200,
                            "posterq api", timeout)
        return self

    def log(self, tail: int | None = None) -> str:
        """Everything the server wrote so far (its access log included)."""
        return super().log(tail)


class RedisServer:
    """A private redis-server on a free port, restartable on the same data folder.

    config: more redis-server options, for example ("--appendonly", "yes", "--appendfsync", "always");
    bind: the address it listens on; password: its requirepass (url carries it); prefix: a command
    that runs it, for example ("ip", "netns", "exec", "NAME") for another network namespace.
    """

    def __init__(self, folder: Path, *config: str, bind: str = "127.0.0.1", password: str = "",
                 prefix: Sequence[str] = ()):
        self.folder = Path(folder)
        self.config = (*(("--requirepass", password) if password else ()), *config)
        self.bind = bind
        self.prefix = tuple(prefix)
        self.port = free_port()
        self.url = f"redis://{f':{password}@' if password else ''}{bind}:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> "RedisServer":
        """Start redis-server and wait until it answers."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server is not installed (apt-get install redis-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [*self.prefix, binary, "--port", str(self.port), "--bind", self.bind, "--dir", str(self.folder),
             "--save", "", *self.config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        raise AssertionError(f"the private redis-server did not start (exit code {self.process.poll()})")

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

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class PostgresServer:
    """A private PostgreSQL cluster (Debian's binaries) on a free port, stoppable and restartable.

    Trust authentication on 127.0.0.1, user postgres, database postgres. Run as root, the server
    runs as the postgres user (PostgreSQL refuses to run as root), in a folder of its own under the
    system's temporary folder (pytest's are closed to other users); remove() deletes it.
    host: the address it listens on (another than 127.0.0.1 trusts the subnets the server is on,
    pg_hba's `samenet`: for a private test network only); prefix: a command that runs it, for
    example ("ip", "netns", "exec", "NAME") for another network namespace.
    """

    def __init__(self, host: str = "127.0.0.1", prefix: Sequence[str] = ()):
        self.folder = Path(tempfile.mkdtemp(prefix="posterq-pg-"))
        self.host = host
        self.prefix = tuple(prefix)
        self.port = free_port()
        self.url = f"postgresql://postgres@{host}:{self.port}/postgres"
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
        if not found:
            raise AssertionError("PostgreSQL's server is not installed (apt-get install postgresql)")
        self.bin = found[-1].parent

    def _run(self, *args: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*self.prefix, *as_postgres, *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def start(self) -> "PostgresServer":
        """Create the cluster on first use, start it and wait until it answers."""
        if not (self.folder / "PG_VERSION").exists():
            if os.geteuid() == 0:
                shutil.chown(self.folder, "postgres", "postgres")
            self._run(str(self.bin / "initdb"), "-D", str(self.folder), "-A", "trust", "-U", "postgres")
            if self.host != "127.0.0.1":
                with open(self.folder / "pg_hba.conf", "a") as hba:
                    hba.write("host all postgres samenet trust\n")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.folder), "-w", "-l",
                  str(self.folder / "server.log"), "-o",
                  f"-c listen_addresses={self.host} -p {self.port} -k {self.folder}", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (fast: disconnect clients and stop cleanly; immediate: as a crash would)."""
        if (self.folder / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.folder), "-w", "-m", mode, "stop")

    def remove(self) -> None:
        """Stop the server at once and delete its cluster."""
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


class AppServer:
    """A WSGI app (the API's create_app) served over real HTTP in a thread, with a ServiceClient.

    get, post and delete answer whatever the server answers, for the tests to read; http is the
    client's requests session (its headers go with every request).
    """

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.client = ServiceClient(self.url, timeout=30, retry=False)
        self.http = self.client.http

    def get(self, path: str, **kwargs) -> requests.Response:
        """GET a path."""
        return self.client.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        """POST to a path."""
        return self.client.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        """DELETE a path."""
        return self.client.request("DELETE", path, **kwargs)

    def wait(self, job_id: str, timeout: float = 60) -> dict:
        """Poll a job until it is final; return it with every result."""
        return wait_for_job(self.url, job_id, timeout=timeout, http=self.http)

    def close(self) -> None:
        """Stop serving, and close the app's Redis connections."""
        self.client.close()
        self.server.shutdown()
        self.thread.join(timeout=5)
        # The app may be a plain WSGI callable (tests of the harness itself): no store then.
        store = getattr(self.app, "extensions", {}).get("posterq", {}).get("store")
        if store is not None:
            # Left to the garbage collector, an open socket is a ResourceWarning, and pytest makes
            # one raised at the session's end an error.
            store.client.close()

    def __enter__(self) -> "AppServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Jobs over HTTP: waiting, paging, exactly once
# ---------------------------------------------------------------------------------------------


def eventually(condition: Callable[[], bool], what: str, timeout: float = 60,
               detail: Callable[[], str] | None = None) -> None:
    """Poll condition() until true; fail naming `what` after timeout seconds, with detail() if given
    (read at the failure: a process's log, say)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s" + (
            f"\n{detail()}" if detail else "")
        time.sleep(0.1)


def is_final(job: dict) -> bool:
    """True once nothing more will happen to the job (done, failed or cancelled)."""
    return JobStatus(job["status"]).final


def _brief(job) -> object:
    # A job's answer without its results, for messages.
    return {k: v for k, v in job.items() if k != "results"} if isinstance(job, dict) else job


@contextlib.contextmanager
def service_client(url: str, http: requests.Session | None = None,
                   timeout: float = 30) -> Iterator[ServiceClient]:
    """A ServiceClient on url that retries nothing (the harness sees each answer), on http if given.

    Without http it has a session of its own, closed on leaving the with block.
    """
    client = ServiceClient(url, timeout=timeout, session=http, retry=False)
    try:
        yield client
    finally:
        if http is None:
            client.close()


def wait_for_job(url: str, job_id: str, *, until: Callable[[dict], bool] = is_final, timeout: float = 60,
                 wait: float = 0, limit: int = PAGE, interval: float = 0.1,
                 http: requests.Session | None = None, ride_out: bool = False,
                 explain: Callable[[], str] | None = None) -> dict:
    """Poll GET url/jobs/<id> (with `limit` results) until `until(job)`; the job then.

    wait: the server's long poll (?wait=) in seconds; ride_out: keep polling through connection
    errors and error answers (an API or Redis restarting); explain: more text for the failure.
    """
    deadline = time.monotonic() + timeout
    last: object = "no answer yet"
    with service_client(url, http) as client:
        while time.monotonic() < deadline:
            try:
                last = client.job(job_id, limit=limit, wait=wait)
                if until(last):
                    return last
            except PosterqError as exc:
                if not ride_out:
                    raise
                last = f"{exc.code}: {exc.message}"
            time.sleep(interval)
    more = f"\n{explain()}" if explain else ""
    raise AssertionError(f"job {job_id} still not as awaited after {timeout} s: {_brief(last)}{more}")


def all_results(url: str, job_id: str, total: int, http: requests.Session | None = None) -> list[dict]:
    """Every result row of a job, page by page."""
    with service_client(url, http, timeout=60) as client:
        pages = [client.job(job_id, offset, PAGE) for offset in range(0, total, PAGE)]
    return [row for page in pages for row in page["results"]]


def exactly_once_problems(job: Mapping, results: list[dict], total: int | None = None) -> list[str]:
    """What breaks "each poster of a finished job has exactly one result" (none: it holds)."""
    problems = []
    if job["status"] != JobStatus.DONE.value:
        problems.append(f"status {job['status']!r}, not done")
    if total is not None and job["total"] != total:
        problems.append(f"total {job['total']}, expected {total}")
    if not job["done"] + job["failed"] == job["total"] == len(results):
        problems.append(f"done {job['done']} + failed {job['failed']}, total {job['total']}, "
                        f"{len(results)} result rows")
    if sorted(row["index"] for row in results) != list(range(job["total"])):
        problems.append("the result rows' indices are not each poster's once")
    settled = {ResultStatus.OK.value, ResultStatus.ERROR.value}
    pending = sum(row["status"] not in settled for row in results)
    if pending:
        problems.append(f"{pending} result rows neither ok nor error")
    return problems


def assert_exactly_once(job: Mapping, results: list[dict], total: int | None = None) -> None:
    """Fail unless each poster of the finished job has exactly one result."""
    problems = exactly_once_problems(job, results, total)
    assert not problems, f"{'; '.join(problems)}: {_brief(dict(job))}"


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database a URL names unless it exists (tests and benchmarks use their own)."""
    import psycopg
    from psycopg import sql

    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    server = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(server, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def empty_database(database) -> None:
    """Delete every job and result (tests start and end with an empty database, as with Redis)."""
    with database.transaction() as tx:
        tx.execute("DELETE FROM posterq_jobs")

