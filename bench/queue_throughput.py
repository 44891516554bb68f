"""Throughput of the queue service (1 and 2 worker processes) beside `posterq label` on the same posters.

    .venv/bin/python bench/queue_throughput.py /work/shared/datasets/movie-posters/Images \
        [--count 1000] [--model models/effnet-lite0-posters] [--batch-size 16] [--upload]

It needs Redis (POSTERQ_REDIS_URL, default redis://127.0.0.1:6379/0) and starts its own API and
worker processes under a private key prefix and queue, so a running service is not disturbed.
It picks the first --count files of the folder (sorted), links them into a temporary folder
(nothing is copied), submits them over HTTP as ONE job (a directory job, or --upload for a
multipart upload) for each worker count, checks that every poster got exactly one result, runs
`posterq label` on the same folder with 1 and 2 processes, and writes a JSON result with what
produced it to bench/results/.
"""

import argparse
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posterq.bundle import load_bundle  # noqa: E402 (after the sys.path line)
from posterq.config import SERVICE_BATCH_SIZE, Settings  # noqa: E402


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def link_posters(source: Path, count: int, into: Path) -> list[Path]:
    """Symlink the first `count` files of source (sorted) into a folder; return the links."""
    files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))[:count]
    if len(files) < count:
        raise SystemExit(f"{source} holds only {len(files)} files, fewer than {count}")
    links = []
    for path in files:
        link = into / path.name
        link.symlink_to(path.resolve())
        links.append(link)
    return links


def run_label(folder: Path, model: str, workers: int, batch_size: int, out: Path) -> dict:
    """Time `posterq label` on the folder; its own posters/s figure and the wall clock."""
    command = [sys.executable, "-m", "posterq.cli", "label", str(folder), "--model", model,
               "--workers", str(workers), "--batch-size", str(batch_size), "--out", str(out), "--no-progress"]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    wall = time.monotonic() - started
    match = re.search(r"labelled (\d+) posters in ([\d.]+) s \(([\d.]+) posters/s\): (\d+) ok", done.stdout)
    return {"processes": workers, "command": " ".join(command[2:]), "wall_s": round(wall, 2),
            "posters": int(match[1]), "seconds": float(match[2]), "posters_per_second": float(match[3]),
            "ok": int(match[4]), "summary": done.stdout.strip().splitlines()[0]}


class Service:
    """The API and one worker at a time, as subprocesses, on a private prefix and queue."""

    def __init__(self, env: dict, log_dir: Path):
        self.env, self.log_dir = env, log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = self._spawn("api", ["api", "--port", str(self.port), "--workers", "2"])
        self._wait(lambda: requests.get(self.url + "/healthz", timeout=2).ok, "the API")

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - lives with the process
        return subprocess.Popen([sys.executable, "-m", "posterq.cli", *args], cwd=ROOT, env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

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

    def start_worker(self, processes: int) -> subprocess.Popen:
        """Start `posterq worker --concurrency processes` and wait until /readyz lists it."""
        hostname = f"bench-{processes}-{os.getpid()}@{socket.gethostname()}"
        worker = self._spawn(f"worker-{processes}", ["worker", "--concurrency", str(processes),
                                                     "--hostname", hostname, "--loglevel", "WARNING"])
        self._wait(lambda: hostname in requests.get(self.url + "/readyz", timeout=2).json()["workers"],
                   "the worker")
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

    def run_job(self, folder: Path, links: list[Path], upload: bool) -> dict:
        """Submit the posters as one job, wait for it, and check every poster was done exactly once."""
        if upload:
            files = [("files", (link.name, link.read_bytes())) for link in links]
            response = requests.post(self.url + "/jobs", files=files, timeout=600)
        else:
            response = requests.post(self.url + "/jobs", json={"directory": str(folder)}, timeout=60)
        response.raise_for_status()
        job_id = response.json()["id"]
        while True:
            job = requests.get(f"{self.url}/jobs/{job_id}", params={"limit": 1}, timeout=30).json()
            if job["status"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.2)
        results = []
        for offset in range(0, job["total"], 1000):
            page = requests.get(f"{self.url}/jobs/{job_id}", params={"offset": offset, "limit": 1000},
                                timeout=30).json()
            results += page["results"]
        indices = [row["index"] for row in results]
        exactly_once = (job["total"] == len(links) == len(results) == job["done"] + job["failed"]
                        and sorted(indices) == list(range(len(links))))
        seconds = job["finished_at"] - job["created_at"]
        return {"job": job_id, "status": job["status"], "posters": job["total"], "ok": job["done"],
                "errors": job["failed"], "seconds": round(seconds, 2),
                "posters_per_second": round(job["total"] / seconds, 1), "exactly_once": exactly_once,
                "workers_seen": sorted({row.get("worker") for row in results})}


def main() -> int:
    """Run the benchmark; print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of posters (read only)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--model", default=str(Settings.from_env().model_path))
    parser.add_argument("--batch-size", type=int, default=SERVICE_BATCH_SIZE)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--upload", action="store_true", help="upload the posters instead of a directory job")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    bundle = load_bundle(args.model)
    redis_url = os.environ.get("POSTERQ_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(redis_url)
    prefix = f"bench-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="posterq-bench-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "posters"
        folder.mkdir()
        links = link_posters(args.data, args.count, folder)
        env = {**os.environ, "POSTERQ_REDIS_URL": redis_url, "POSTERQ_KEY_PREFIX": prefix,
               "POSTERQ_QUEUE": prefix, "POSTERQ_MODEL": str(bundle.path),
               "POSTERQ_BATCH_SIZE": str(args.batch_size),
               "POSTERQ_DATA_ROOTS": os.pathsep.join([str(folder), str(args.data.resolve())]),
               "POSTERQ_MAX_REQUEST_BYTES": str(1 << 30), "POSTERQ_HEARTBEAT_INTERVAL": "1"}
        load_before = os.getloadavg()
        service_runs, label_runs = [], []
        service = Service(env, tmp)
        try:
            for processes in args.processes:
                worker = service.start_worker(processes)
                try:
                    run = service.run_job(folder, links, args.upload)
                finally:
                    service.stop(worker)
                run["processes"] = processes
                service_runs.append(run)
                print(f"service, {processes} worker process(es): {run['posters_per_second']} posters/s "
                      f"({run['seconds']} s, exactly once: {run['exactly_once']})", flush=True)
        finally:
            service.stop(service.api)
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
            client.delete(prefix)
        for processes in args.processes:
            run = run_label(folder, str(bundle.path), processes, args.batch_size,
                            tmp / f"label-{processes}.csv")
            label_runs.append(run)
            print(f"posterq label, {processes} process(es): {run['posters_per_second']} posters/s "
                  f"({run['seconds']} s; wall {run['wall_s']} s)", flush=True)

    commit = subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], check=False, cwd=ROOT, capture_output=True,
                                text=True).stdout.strip())
    result = {
        "benchmark": "queue_throughput",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "git": {"commit": commit, "dirty": dirty},
        "model": {**bundle.model_id, "path": str(bundle.path), "sha256": bundle.meta["sha256"]},
        "data": {"folder": str(args.data), "posters": args.count,
                 "selection": "first N files, sorted by name"},
        "settings": {"batch_size": args.batch_size, "submission": "upload" if args.upload else "directory",
                     "redis": redis_url.rsplit("@", 1)[-1], "interpreter_threads": "cores // processes"},
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "loadavg_before": [round(v, 2) for v in load_before],
                    "redis_version": client.info("server").get("redis_version")},
        "service": service_runs,
        "label": label_runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"queue_throughput-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0 if all(run["exactly_once"] for run in service_runs) else 1


if __name__ == "__main__":
    sys.exit(main())
