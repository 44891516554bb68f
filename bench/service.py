"""What the service benchmarks share: settings under a private key prefix, the API and workers as
processes (tests/harness.py's, as the tests use), posters, provenance."""

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from posterq.client import ServiceClient
from posterq.config import DEFAULT_MODEL_DIR, Settings
from posterq.cpu import cpu_facts
from posterq.exceptions import PosterqError
from tests.harness import (
    SOURCE_ROOT,
    ApiProcess,
    WorkerProcess,
    all_results,
    exactly_once_problems,
    wait_for_job,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
#: Seconds a benchmark's job may take before the run is called stuck.
JOB_TIMEOUT = 3600


def bench_settings(name: str, **changes) -> Settings:
    """The service's settings from the environment (POSTERQ_REDIS_URL, or the service's default Redis),
    under a key prefix and queue of this benchmark's own, with changes.

    Results are not reused by content (POSTERQ_REUSE_RESULTS=0) unless changes say reuse_results:
    a benchmark of inference sends the same posters again and again, and must see each classified.
    """
    prefix = f"bench-{name}-{os.getpid()}"
    return Settings.from_env(None, key_prefix=prefix, queue=prefix, **{"reuse_results": False, **changes})


def pick_posters(source: Path, count: int) -> list[Path]:
    """The first `count` files of a folder, sorted by name."""
    files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))[:count]
    if len(files) < count:
        raise SystemExit(f"{source} holds only {len(files)} files, fewer than {count}")
    return files


def provenance() -> dict:
    """The commit the figures came from, whether the tree was dirty, and the machine with its CPU's
    model and vector features (posterq.cpu.cpu_facts: a model's speed depends on them)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], check=False, cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    return {"git": {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))},
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpu": cpu_facts(), "cpus": os.cpu_count(),
                        "loadavg_before": [round(v, 2) for v in os.getloadavg()]}}


def linked_folder(posters: list[Path], tmp: Path) -> tuple[Path, list[Path], list[Path]]:
    """A folder of symlinks to the posters under tmp: (the folder, its links, the data roots it needs)."""
    folder = tmp / "posters"
    folder.mkdir()
    links = []
    for path in posters:
        links.append(folder / path.name)
        links[-1].symlink_to(path.resolve())
    # The links resolve into the posters' own folders: those must be roots too.
    return folder, links, [folder, *sorted({p.resolve().parent for p in posters})]


def save_report(name: str, report: dict, table: str | None = None, out: Path = RESULTS) -> Path:
    """Write a report to OUT/<name>-<time>.json (a table beside it as .md) and print it; return the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    if table is None:
        print(json.dumps(report, indent=2))
    else:
        path.with_suffix(".md").write_text(table)
        print(table)
    print(f"wrote {path}", file=sys.stderr)
    return path


def linked_settings(name: str, posters: list[Path], tmp: Path) -> tuple[Path, list[Path], Settings]:
    """Links to the posters under tmp, and bench settings whose data roots hold them: (folder, links,
    settings), with the shipped model and a request size that lets one upload hold every poster."""
    folder, links, roots = linked_folder(posters, tmp)
    return folder, links, bench_settings(name, model=str(DEFAULT_MODEL_DIR), data_roots=roots,
                                         max_request_bytes=1 << 30)


def client(url: str, timeout: float = 600) -> ServiceClient:
    """A ServiceClient that retries nothing: a benchmark reports the service's answers as they come."""
    return ServiceClient(url, timeout=timeout, retry=False)


def analysed(service: ServiceClient, data: bytes) -> bool:
    """True when POST /analysis/ answered the poster's genres; False when it answered an error."""
    try:
        service.analyse(data)
    except PosterqError:
        return False
    return True


class Service:
    """One `posterq api` (gunicorn's default settings) and the `posterq worker`s started on it.

    source_root: the checkout whose code every process of this service runs (default: this one).
    A context manager: leaving it stops every process and deletes the keys of the private prefix.
    """

    def __init__(self, settings: Settings, log_dir: Path, source_root: Path = SOURCE_ROOT):
        self.settings, self.log_dir, self.source_root = settings, log_dir, source_root
        self.api = ApiProcess(settings, log_dir / "api.log", source_root=source_root)
        try:
            self.api.wait_ready()
        except AssertionError:
            self.api.stop()
            raise
        self.url = self.api.url
        self.workers: list[WorkerProcess] = []

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, *exc_info) -> None:
        for worker in self.workers:
            worker.stop(timeout=20)
        self.api.stop(timeout=20)
        forget_keys(self.settings)

    def start_worker(self, processes: int | None = None, name: str | None = None,
                     cpus: set[int] | None = None, wait: bool = True, **changes) -> WorkerProcess:
        """Start `posterq worker` (default concurrency unless given); wait for its heartbeat unless told not.

        name: part of the Celery hostname (default: the process count); cpus: pin the worker to
        those CPUs; wait: False returns at once (start several, then call wait_ready on each);
        changes: settings of this worker that differ from the service's.
        """
        name = name or str(processes or "default")
        hostname = f"bench-{name}-{os.getpid()}@{socket.gethostname()}"
        worker = WorkerProcess(hostname, self.settings.replace(**changes), self.log_dir, processes,
                               loglevel="WARNING", cpus=cpus, source_root=self.source_root)
        self.workers.append(worker)
        return worker.wait_ready() if wait else worker

    def stop_worker(self, worker: WorkerProcess) -> None:
        """Stop one worker (warm shutdown, then kill)."""
        worker.stop(timeout=20)
        self.workers.remove(worker)

    def finish(self, job_id: str) -> dict:
        """Wait for a job to be final (short polls) and return it."""
        return wait_for_job(self.url, job_id, limit=1, interval=0.05, timeout=JOB_TIMEOUT)

    def run_job(self, folder: Path, links: list[Path], upload: bool) -> dict:
        """Submit the posters as one job, wait for it, and check every poster was done exactly once."""
        with client(self.url) as http:
            if upload:
                job = http.submit([(link.name, link.read_bytes()) for link in links])
            else:
                job = http.submit_directory(folder)
        job = self.finish(job["id"])
        results = all_results(self.url, job["id"], job["total"])
        seconds = job["finished_at"] - job["created_at"]
        return {"job": job["id"], "status": job["status"], "posters": job["total"], "ok": job["done"],
                "errors": job["failed"], "seconds": round(seconds, 2),
                "posters_per_second": round(job["total"] / seconds, 1),
                "exactly_once": not exactly_once_problems(job, results, len(links)),
                "workers_seen": sorted({row.get("worker") for row in results})}


def forget_keys(settings: Settings) -> None:
    """Delete every key a benchmark wrote under its private prefix (and its Celery queue's keys)."""
    client = redis.Redis.from_url(settings.redis_url)
    prefix, queue = settings.key_prefix, settings.queue
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    client.close()


@contextlib.contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """A detached `git worktree` of commit in a temporary folder, removed (and pruned) on leaving."""
    parent = Path(tempfile.mkdtemp(prefix=f"posterq-{commit[:7]}-"))
    folder = parent / "src"
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), commit], cwd=ROOT, check=True,
                   capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, check=False,
                       capture_output=True)
        shutil.rmtree(parent, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=False, capture_output=True)


def imported_from(source_root: Path) -> dict[str, str]:
    """The files posterq, api and worker come from in a process started as tests/harness.py starts one
    from source_root (its cwd and PYTHONPATH), despite the editable install of this checkout."""
    code = ("import json, posterq, api, worker; "
            "print(json.dumps({m.__name__: m.__file__ for m in (posterq, api, worker)}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=source_root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(source_root)}, check=True)
    return json.loads(done.stdout)


def process_source(pid: int) -> dict[str, str]:
    """The cwd and PYTHONPATH of a running process (Linux /proc)."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    paths = [entry.split(b"=", 1)[1].decode() for entry in environ if entry.startswith(b"PYTHONPATH=")]
    return {"cwd": os.readlink(f"/proc/{pid}/cwd"), "pythonpath": paths[0] if paths else ""}


def git_commit(revision: str) -> str:
    """The full commit id of a revision of this repository."""
    return subprocess.run(["git", "rev-parse", "--verify", f"{revision}^{{commit}}"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def run_threads(count: int, target) -> float:
    """Run target(n) for n in range(count) in threads at once; return the monotonic time they started."""
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return started


def module_parser(doc: str, posters: int, quick_posters: int) -> argparse.ArgumentParser:
    """The command line of one benchmark module run alone: DATA [--quick] [--posters N]."""
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


def run_alone(measure, doc: str, posters: int, quick_posters: int) -> int:
    """A benchmark module's command line: DATA [--quick] [--posters N]; measure, print the figures as JSON."""
    args = module_parser(doc, posters, quick_posters).parse_args()
    print(json.dumps(measure(chosen_posters(args), args.quick), indent=2))
    return 0
