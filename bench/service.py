"""What the service benchmarks share: a private API and workers as subprocesses, posters, provenance."""

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pick_posters(source: Path, count: int) -> list[Path]:
    """The first `count` files of a folder, sorted by name."""
    files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))[:count]
    if len(files) < count:
        raise SystemExit(f"{source} holds only {len(files)} files, fewer than {count}")
    return files


def link_posters(source: Path, count: int, into: Path) -> list[Path]:
    """Symlink the first `count` files of source (sorted) into a folder; return the links."""
    links = []
    for path in pick_posters(source, count):
        link = into / path.name
        link.symlink_to(path.resolve())
        links.append(link)
    return links


def provenance() -> dict:
    """The commit the figures came from, whether the tree was dirty, and the machine."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], check=False, cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    return {"git": {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))},
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpus": os.cpu_count(), "loadavg_before": [round(v, 2) for v in os.getloadavg()]}}


class Service:
    """The API and workers as subprocesses (`posterq api`, `posterq worker`) with an environment."""

    def __init__(self, env: dict, log_dir: Path, api_args: tuple[str, ...] = ()):
        self.env, self.log_dir = env, log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = self._spawn("api", ["api", "--port", str(self.port), *api_args])
        self._wait(lambda: requests.get(self.url + "/healthz", timeout=2).ok, "the API")

    def _spawn(self, name: str, args: list[str], env: dict | None = None,
               cpus: set[int] | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - lives with the process
        # cpus: pin the process (and the children it forks) to those CPUs, like `taskset -c`.
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        return subprocess.Popen([sys.executable, "-m", "posterq.cli", *args], cwd=ROOT, env=env or self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=pin)

    @staticmethod
    def _wait(check, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{what} did not come up in {timeout} s")

    def start_worker(self, processes: int | None = None, name: str | None = None, env: dict | None = None,
                     cpus: set[int] | None = None) -> subprocess.Popen:
        """Start `posterq worker` (default concurrency unless given); wait until /readyz lists it.

        name: part of the Celery hostname (default: the process count); env: extra environment
        over the service's; cpus: pin the worker to those CPUs.
        """
        name = name or str(processes or "default")
        hostname = f"bench-{name}-{os.getpid()}@{socket.gethostname()}"
        concurrency = ["--concurrency", str(processes)] if processes else []
        worker = self._spawn(f"worker-{name}",
                             ["worker", *concurrency, "--hostname", hostname, "--loglevel", "WARNING"],
                             {**self.env, **(env or {})}, cpus)
        self._wait(lambda: hostname in requests.get(self.url + "/readyz", timeout=2).json()["workers"],
                   "the worker")
        worker.hostname = hostname  # the Celery hostname its results carry
        return worker

    @staticmethod
    def stop(process: subprocess.Popen) -> None:
        """Stop a process group: TERM, then KILL."""
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def finish(self, job_id: str) -> dict:
        """Wait for a job to be final (short polls: old servers have no ?wait) and return it."""
        while True:
            job = requests.get(f"{self.url}/jobs/{job_id}", params={"limit": 1}, timeout=30).json()
            if job["status"] in ("done", "failed", "cancelled"):
                return job
            time.sleep(0.05)

    def run_job(self, folder: Path, links: list[Path], upload: bool) -> dict:
        """Submit the posters as one job, wait for it, and check every poster was done exactly once."""
        if upload:
            files = [("files", (link.name, link.read_bytes())) for link in links]
            response = requests.post(self.url + "/jobs", files=files, timeout=600)
        else:
            response = requests.post(self.url + "/jobs", json={"directory": str(folder)}, timeout=60)
        response.raise_for_status()
        job = self.finish(response.json()["id"])
        results = []
        for offset in range(0, job["total"], 1000):
            page = requests.get(f"{self.url}/jobs/{job['id']}", params={"offset": offset, "limit": 1000},
                                timeout=30).json()
            results += page["results"]
        indices = [row["index"] for row in results]
        exactly_once = (job["total"] == len(links) == len(results) == job["done"] + job["failed"]
                        and sorted(indices) == list(range(len(links))))
        seconds = job["finished_at"] - job["created_at"]
        return {"job": job["id"], "status": job["status"], "posters": job["total"], "ok": job["done"],
                "errors": job["failed"], "seconds": round(seconds, 2),
                "posters_per_second": round(job["total"] / seconds, 1), "exactly_once": exactly_once,
                "workers_seen": sorted({row.get("worker") for row in results})}


def forget_keys(redis_url: str, prefix: str) -> None:
    """Delete every key a benchmark wrote under its private prefix (and its Celery queue's keys)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.delete(prefix, f"_kombu.binding.{prefix}", f"_kombu.binding_permanent.{prefix}")


def run_threads(count: int, target) -> float:
    """Run target(n) for n in range(count) in threads at once; return the monotonic time they started."""
    import threading

    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return started


def module_parser(doc: str, posters: int, quick_posters: int):
    """The command line of one benchmark module run alone: DATA [--quick] [--posters N]."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of posters (read only)")
    parser.add_argument("--quick", action="store_true", help=f"fewer posters ({quick_posters}), shorter runs")
    parser.add_argument("--posters", type=int, default=None,
                        help=f"posters to use (default {posters}, {quick_posters} with --quick)")
    parser.set_defaults(default_posters=posters, quick_posters=quick_posters)
    return parser


def chosen_posters(args) -> list[Path]:
    """The posters a module_parser's arguments ask for."""
    count = args.posters or (args.quick_posters if args.quick else args.default_posters)
    return pick_posters(args.data, count)
