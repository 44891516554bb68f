"""Workers on other hosts, as Linux network namespaces: Redis (with a password), PostgreSQL and the
API on one "host", a worker on each of two others, joined by veth pairs on 10.77.0.0/24 alone.

    .venv/bin/python -m pytest -m hosts      # as root; skipped, with the reason, where that is not allowed

The namespaces have no route but their own /24, so nothing in them reaches any other address;
the machine's own interfaces are never touched (each veth is created inside its namespaces).
Every namespace, veth and process made here is removed at the end, whatever happened.
"""

import contextlib
import ctypes
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from harness import (
    PAGE,
    ApiProcess,
    PostgresServer,
    RedisServer,
    WorkerProcess,
    all_results,
    assert_exactly_once,
    eventually,
    is_final,
    wait_for_job,
)
from samples import poster_bytes

from posterq.config import Settings
from posterq.jobs.store import JobStore

pytestmark = pytest.mark.hosts

SUBNET = "10.77.0"
SERVER = f"{SUBNET}.1"
#: Worker host -> (its address, its worker's name).
HOSTS = {"a": (f"{SUBNET}.2", "alpha@host-a"), "b": (f"{SUBNET}.3", "beta@host-b")}
#: Big enough that decoding, not the queue, takes a batch's time, so a host is cut mid-batch.
POSTER_SIZE = (1000, 1500)
#: Posters of the job that loses a host: seconds of work for the two, many chances to cut.
POSTERS = 200
CLONE_NEWNET = 0x40000000
#: Celery's INFO lines about a batch task: received, then succeeded, retried or raised.
TASK_EVENT = re.compile(r"posterq\.classify_batch\[([0-9a-f-]+)\] (received|succeeded|retry|raised)")


def ip(*args: str) -> subprocess.CompletedProcess:
    """Run `ip ARGS`; fail with what it said."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


class Network:
    """A "server" namespace with a bridge on SERVER, and one namespace per worker host on a veth to it."""

    def __init__(self):
        tag = f"posterq-{os.getpid()}"
        self.server = f"{tag}-server"
        self.hosts = {host: f"{tag}-{host}" for host in HOSTS}
        self.made: list[str] = []

    def build(self) -> "Network":
        """Create the namespaces and links (removed by remove(), also after a failure half-way)."""
        for namespace in (self.server, *self.hosts.values()):
            ip("netns", "add", namespace)
            self.made.append(namespace)
            ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", self.server, "link", "add", "br0", "type", "bridge")
        ip("-n", self.server, "addr", "add", f"{SERVER}/24", "dev", "br0")
        ip("-n", self.server, "link", "set", "br0", "up")
        for host, namespace in self.hosts.items():
            # Both ends are born in the private namespaces: the machine's own never sees them.
            ip("-n", self.server, "link", "add", self.port(host), "type", "veth", "peer", "name", "eth0",
               "netns", namespace)
            ip("-n", self.server, "link", "set", self.port(host), "master", "br0", "up")
            ip("-n", namespace, "addr", "add", f"{HOSTS[host][0]}/24", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
        return self

    @staticmethod
    def port(host: str) -> str:
        """The server's end of a host's veth (its switch port)."""
        return f"to-{host}"

    def prefix(self, namespace: str) -> tuple[str, ...]:
        """The command prefix that runs a process in a namespace."""
        return ("ip", "netns", "exec", namespace)

    def link(self, host: str, state: str) -> None:
        """Set a host's switch port up or down (a cable pulled: the host hears nothing, gets no error)."""
        ip("-n", self.server, "link", "set", self.port(host), state)

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """Open this thread's connections from the server namespace, as a client on that host would."""
        with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{self.server}") as there:
            _setns(there.fileno())
            try:
                yield
            finally:
                _setns(home.fileno())

    def remove(self) -> None:
        """Delete the namespaces (their veths and bridge go with them); their processes must be gone."""
        for namespace in reversed(self.made):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False, timeout=30)
        self.made.clear()


def _why_no_namespaces() -> str | None:
    if os.geteuid() != 0:
        return f"network namespaces (ip netns add) need root; this runs as uid {os.geteuid()}"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    return None


class Hosts:
    """What the tests use: the network, the API, the workers by host, a store on the server's Redis."""

    def __init__(self, network: Network, api: ApiProcess, settings: Settings, root: Path, log_dir: Path,
                 cleanup: contextlib.ExitStack):
        self.network, self.api, self.settings, self.root, self.log_dir = network, api, settings, root, log_dir
        self.cleanup = cleanup
        self.workers: dict[str, WorkerProcess] = {}
        self.store = JobStore.from_settings(settings)  # connects on first use: from inside() only
        self.http = requests.Session()
        cleanup.callback(self.http.close)
        cleanup.callback(self.store.client.close)

    def start_worker(self, host: str) -> WorkerProcess:
        """Start the host's worker (stopped by the fixture's clean-up) and wait for its heartbeat."""
        name = HOSTS[host][1]
        log_dir = self.log_dir / f"{host}-{sum(1 for _ in self.log_dir.glob(f'{host}-*'))}"
        log_dir.mkdir()
        there = self.network.prefix(self.network.hosts[host])
        worker = WorkerProcess(name, self.settings, log_dir, prefix=there)
        self.cleanup.callback(worker.stop)
        self.workers[host] = worker
        return worker.wait_ready()

    def folder(self, name: str, count: int, start: int = 0) -> Path:
        """A folder of `count` generated posters (seeds from `start`) under the data root every host sees
        at the same path."""
        folder = self.root / name
        folder.mkdir()
        for i in range(start, start + count):
            (folder / f"poster_{i:03d}.jpg").write_bytes(poster_bytes(i, size=POSTER_SIZE))
        return folder

    def submit(self, folder: Path) -> str:
        """POST a directory job; its id."""
        response = self.http.post(f"{self.api.url}/jobs", json={"directory": str(folder)}, timeout=30)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id: str) -> dict:
        """The job with its first page of results."""
        response = self.http.get(f"{self.api.url}/jobs/{job_id}", params={"limit": PAGE}, timeout=30)
        response.raise_for_status()
        return response.json()

    def finished(self, job_id: str) -> tuple[dict, list[dict]]:
        """Wait for the job to end; it and all its results."""
        job = wait_for_job(self.api.url, job_id, timeout=180, http=self.http, explain=self.worker_logs)
        return job, all_results(self.api.url, job_id, job["total"], self.http)

    def worker_logs(self) -> str:
        """The workers' last log lines, for failure messages."""
        return "\n".join(f"--- {w.hostname}\n{w.log(3000)}" for w in self.workers.values())


@pytest.fixture(scope="module")
def hosts(request, tmp_path_factory):
    """Redis, PostgreSQL and the API on the server namespace, a worker on each host namespace."""
    why = _why_no_namespaces()
    if why:
        pytest.skip(why)
    logs = tmp_path_factory.mktemp("hosts-logs")
    root = tmp_path_factory.mktemp("hosts-data").resolve()
    network = Network()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(network.remove)  # last: every process in them is stopped before
        try:
            network.build()
        except RuntimeError as exc:
            pytest.skip(f"no private network here: {exc}")
        tiny_bundle = request.getfixturevalue("tiny_bundle")  # after the checks: it may import TensorFlow
        server = network.prefix(network.server)
        with network.inside():
            redis_server = RedisServer(logs / "redis", "--appendonly", "no", bind=SERVER,
                                       password="hosts-test-password", prefix=server)
            cleanup.callback(redis_server.stop)
            redis_server.start()
            postgres = PostgresServer(host=SERVER, prefix=server)
            cleanup.callback(postgres.remove)
            postgres.start()
            # Short settings: the sweep gives a lost batch back after batch_time_limit + 2 sweeps.
            settings = Settings.from_env(
                {}, redis_url=redis_server.url, database_url=postgres.url, key_prefix="pqhosts",
                queue="pqhosts", model=str(tiny_bundle), batch_size=2, threads=1, solo_threads=1,
                data_roots=(root,), visibility_timeout=4, restore_interval=1, heartbeat_interval=0.5,
                batch_time_limit=4, sweep_interval=0.5)
            # HOST=0.0.0.0 as on a real server: clients on other hosts reach it.
            api = ApiProcess(settings, logs / "api.log", "--workers", "1", "--threads", "4", host="0.0.0.0",
                             prefix=server)
            cleanup.callback(api.stop)
            api.url = f"http://{SERVER}:{api.port}"
            state = Hosts(network, api, settings, root, logs, cleanup)
            api.wait_ready()
            for host in HOSTS:
                state.start_worker(host)
        yield state
    leftover = set(ip("netns", "list").stdout.split()) & {network.server, *network.hosts.values()}
    assert not leftover, f"namespaces left behind: {leftover}"


def batch_tasks(worker: WorkerProcess) -> tuple[int, list[str]]:
    """From the worker's log: how many batch tasks it finished, and the ids of those it is running."""
    last: dict[str, str] = {}
    for task_id, event in TASK_EVENT.findall(worker.log(tail=None)):
        last[task_id] = event
    running = [task_id for task_id, event in last.items() if event == "received"]
    return len(last) - len(running), running


def test_workers_on_two_hosts_share_a_job_and_each_poster_gets_one_result(hosts):
    with hosts.network.inside():
        job_id = hosts.submit(hosts.folder("shared", 60))
        job, results = hosts.finished(job_id)
        assert_exactly_once(job, results, total=60)
        by_worker = Counter(row["worker"] for row in results)
        assert set(by_worker) == {name for _, name in HOSTS.values()}, by_worker
        assert set(hosts.store.stats.workers()) == set(by_worker)  # both still live


def test_a_host_cut_off_mid_job_loses_nothing_and_counts_nothing_twice(hosts):
    victim, rescuer = hosts.workers["b"], hosts.workers["a"]
    store = hosts.store
    with hosts.network.inside():
        before = store.stats.read()
        job_id = hosts.submit(hosts.folder("cut", POSTERS))
        try:
            held = cut_mid_batch(hosts, "b", job_id)
            job, results = hosts.finished(job_id)
            assert_exactly_once(job, results, total=POSTERS)
            # The held batch came back: its Celery message restored, or its posters given back by the sweep.
            eventually(lambda: sum(store.stats.read().get(name, 0) - before.get(name, 0)
                                   for name in ("redeliveries", "sweep_given_back")) >= 1,
                       "the cut host's batch delivered again or given back")
            eventually(lambda: victim.hostname not in store.stats.workers(),
                       "lapsed heartbeat of the cut host")
            rows = {row["index"]: row for row in results}
            assert all(rows[index]["status"] == "ok" for _, index in held), held
            by_worker = Counter(row["worker"] for row in results)
            assert by_worker[rescuer.hostname] > 0 and by_worker[victim.hostname] > 0, by_worker
        finally:
            hosts.network.link("b", "up")
        # The host comes back and, the other one stopped, runs a job alone: it works again. Its stale
        # batch, whose process either wrote late or was killed before it could take another, changed
        # nothing in the first job.
        victim.wait_ready(timeout=60)
        rescuer.stop()
        try:
            # Posters new to the service, so that the host classifies them itself (none is reused).
            later_id = hosts.submit(hosts.folder("after", 10, start=POSTERS))
            later, later_results = hosts.finished(later_id)
        finally:
            hosts.start_worker("a")
        assert_exactly_once(later, later_results, total=10)
        assert {row["worker"] for row in later_results} == {victim.hostname}
        again, again_results = hosts.finished(job_id)
        assert_exactly_once(again, again_results, total=POSTERS)
        assert again_results == results


def cut_mid_batch(hosts: Hosts, host: str, job_id: str) -> list[tuple[str, int]]:
    """Pull a host's cable while its worker holds a claimed batch of the job; the posters it holds.

    A cut between two of its batches proves nothing: the link is mended, and cut again once the
    worker has finished another batch (its connections work again).
    """
    worker = hosts.workers[host]
    finished_before = batch_tasks(worker)[0]  # it must take a share of this job first
    next_look = time.monotonic()
    deadline = next_look + 120
    while True:
        now = time.monotonic()
        assert now < deadline, f"{worker.hostname} never held a batch at the cut\n{hosts.worker_logs()}"
        if now >= next_look:
            assert not is_final(hosts.job(job_id)), "the job ended before the host could be cut"
            next_look = now + 0.5
        finished, running = batch_tasks(worker)
        if finished <= finished_before or not running:
            time.sleep(0.002)
            continue
        hosts.network.link(host, "down")
        claimed = [ref for task_id in running for ref in hosts.store.claims.claimed(task_id)]
        held = [ref for ref in claimed if ref[0] == job_id]
        if held:
            return held
        hosts.network.link(host, "up")
        finished_before = finished
