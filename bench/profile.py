"""Where a default `posterq worker` spends its time on one upload job: CPU seconds by process, py-spy.

    .venv/bin/python -m bench.profile ../shared/datasets/movie-posters/Images [--posters N]

Needs Redis (POSTERQ_REDIS_URL, else the service's default; a private key prefix, nothing flushed),
py-spy (`.venv/bin/pip install py-spy`, in the dev extra) and a quiet machine. Starts `posterq api`
and one default `posterq worker` (bench.service, API keys off), warms them up with a small job, then
uploads the first N posters of the folder (default 1,000) as one job, reading utime+stime in
/proc/<pid>/stat of redis-server (INFO process_id), the API, the Celery main and each pool process
before and after, under `py-spy record --subprocesses --format raw --rate 100` of the worker. A stack
goes to the bucket of its leaf-most frame of interest: LiteRT (invoke), posterq.imaging or PIL (decode
and preprocess), redis-py, Celery/kombu/billiard; else other. Writes bench/results/profile-service-*.json.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis

from bench.scale import multipart
from bench.service import RESULTS, Service, bench_settings, chosen_posters, client, module_parser, provenance
from posterq.bundle import load_bundle
from posterq.config import DEFAULT_MODEL_DIR
from tests.harness import all_results, exactly_once_problems, wait_for_job

#: Path components of a frame's file that put a stack in a bucket, tried from the leaf up.
BUCKETS = (("invoke", {"ai_edge_litert", "tflite_runtime"}),
           ("decode and preprocess", {"posterq.imaging", "PIL"}), ("redis", {"redis"}),
           ("celery, kombu, billiard", {"celery", "kombu", "billiard"}))


def py_spy() -> str:
    """The py-spy next to this interpreter (or on PATH); exits saying how to install it if none."""
    here = Path(sys.executable).parent
    binary = shutil.which("py-spy", path=f"{here}{os.pathsep}{os.environ.get('PATH', '')}")
    if not binary:
        raise SystemExit("py-spy is missing: `.venv/bin/pip install py-spy` (or its wheel), or "
                         "`.venv/bin/pip install -e '.[dev]'`")
    return binary


def cpu_seconds(pid: int) -> float:
    """CPU seconds a process has used, user and system (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def children(pid: int) -> list[int]:
    """The pids whose parent is pid (forked by any of its threads), in order."""
    return sorted(int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                  for child in (task / "children").read_text().split())


def processes(service: Service, worker, client: redis.Redis) -> dict[str, int]:
    """The processes whose CPU is read: redis-server (if local), the API's, the worker's."""
    redis_pid, named = int(client.info("server")["process_id"]), {}
    comm = Path(f"/proc/{redis_pid}/comm")
    if comm.exists() and "redis" in comm.read_text():  # a Redis on another host has no CPU here
        named["redis-server"] = redis_pid
    named["api gunicorn master"] = service.api.pid
    named.update({f"api gunicorn worker {n}": pid for n, pid in enumerate(children(service.api.pid), 1)})
    named["celery main process"] = worker.pid
    named.update({f"pool process {n}": pid for n, pid in enumerate(children(worker.pid), 1)})
    return named


def bucket(frames: list[str]) -> str:
    """The bucket of a stack (root first): that of its leaf-most frame in any bucket, else other."""
    for frame in reversed(frames):
        path = frame.rsplit(" (", 1)[-1].rsplit(":", 1)[0]
        parts = set(path.split("/")) | ({"posterq.imaging"} if path.endswith("posterq/imaging.py") else set())
        for name, packages in BUCKETS:
            if parts & packages:
                return name
    return "other"


def classify(raw: Path, roles: dict[int, str]) -> dict:
    """Samples of a raw py-spy file, their shares by bucket, and samples by process."""
    buckets, pool, by_process = Counter(), Counter(), Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        pids = [int(f.split(":", 1)[0].split()[1]) for f in frames if f.startswith("process ")]
        role = roles.get(pids[-1], "other") if pids else "other"
        leaf = bucket([f for f in frames if not f.startswith("process ")])
        buckets[leaf] += int(count)
        if role.startswith("pool"):  # where a poster's time goes: the pool processes alone
            pool[leaf] += int(count)
        by_process[role] += int(count)
    total, pool_total = sum(buckets.values()), sum(pool.values()) or 1
    return {"py_spy_samples": total,
            "py_spy_share_by_leaf": {k: round(v / total, 3) for k, v in buckets.most_common()},
            "py_spy_pool_share_by_leaf": {k: round(v / pool_total, 3) for k, v in pool.most_common()},
            "py_spy_samples_by_process": dict(by_process.most_common())}


def snapshot(named: dict[str, int], worker, client: redis.Redis) -> dict:
    """CPU seconds by process, the worker's batches run, Redis commands (less INFO) and read events."""
    info = client.info("all")
    return {"cpu": {name: cpu_seconds(pid) for name, pid in named.items()},
            "batches": int(worker.store.stats.read().get("batches", 0)),
            "commands": sum(int(v["calls"]) for k, v in info.items()
                            if k.startswith("cmdstat_") and k != "cmdstat_info"),
            "read_events": int(info["total_reads_processed"])}


def submit(url: str, payload: tuple[bytes, str]) -> dict:
    """POST a multipart body as one job; the job once final (long polls)."""
    with client(url) as http:
        job_id = http.submit_encoded(*payload)["id"]
        return wait_for_job(url, job_id, wait=30, limit=1, timeout=3600, http=http.http)


def profile(posters: list[Path], spy: str) -> dict:
    """Start the service, warm it up, run the job under py-spy; the raw figures."""
    body, content_type = multipart(posters)
    settings = bench_settings("profile", model=str(DEFAULT_MODEL_DIR), api_keys="", api_keys_file="",
                              operator_keys="", max_request_bytes=max(1 << 30, 2 * len(body)))
    client = redis.Redis.from_url(settings.redis_url)
    with tempfile.TemporaryDirectory(prefix="posterq-profile-") as tmp, \
            Service(settings, Path(tmp)) as service:
        worker = service.start_worker()
        submit(service.url, multipart(posters[:16]))  # untimed: every pool process loads its model
        named = processes(service, worker, client)
        raw, log = Path(tmp) / "py-spy.txt", Path(tmp) / "py-spy.log"
        with open(log, "wb") as out:
            recorder = subprocess.Popen([spy, "record", "--subprocesses", "--format", "raw", "--rate", "100",
                                         "-o", str(raw), "--pid", str(worker.pid)], stdout=out, stderr=out)
            try:
                time.sleep(1)  # attached before the job starts
                before, started = snapshot(named, worker, client), time.monotonic()
                job = submit(service.url, (body, content_type))
                wall, after = time.monotonic() - started, snapshot(named, worker, client)
            finally:
                recorder.send_signal(signal.SIGINT)  # py-spy writes its file and exits
                recorder.wait(timeout=120)
        if not raw.exists():
            raise RuntimeError(f"py-spy wrote nothing:\n{log.read_text()}")
        if set(children(worker.pid)) != {pid for name, pid in named.items() if name.startswith("pool")}:
            raise RuntimeError("the pool processes changed during the job: CPU figures are incomplete")
        problems = exactly_once_problems(job, all_results(service.url, job["id"], job["total"]), len(posters))
        return {"job": job, "wall": wall, "before": before, "after": after, "problems": problems,
                "spied": classify(raw, {pid: name for name, pid in named.items()}),
                "py_spy_said": log.read_text().strip().splitlines()[-2:]}


NOTES = ["job_seconds: the job's created_at -> finished_at; the CPU seconds and Redis counters span "
         "wall_seconds, POST (body encoded before) to the long poll's final answer",
         "pool_ms_per_poster_per_core: pool CPU ms summed, per poster; by_process: each one's, per poster",
         "py-spy samples only non-idle stacks and runs on the same cores, so it slows the job a bit",
         "redis_per_batch: server-wide deltas (the API's upload and polls too) over the worker's batches; "
         "commands count pipelined and Lua-run commands each (above round trips); read events come close"]


def measure(posters: list[Path]) -> dict:
    """Run the profiled job and return the figures, JSON-ready."""
    spy, produced, model = py_spy(), provenance(), load_bundle(None).identity
    run = profile(posters, spy)
    before, after, job = run["before"], run["after"], run["job"]
    cpu = {name: round(after["cpu"][name] - before["cpu"][name], 2) for name in before["cpu"]}
    pool, batches = [name for name in cpu if name.startswith("pool")], after["batches"] - before["batches"]
    return {
        "what": f"py-spy record --subprocesses of a default `posterq worker` ({len(pool)} pool processes) "
                f"during a {len(posters)}-poster upload job (one multipart POST /jobs), model "
                f"{model['version']}, commit {produced['git']['commit'][:7]}; CPU seconds from "
                "/proc/<pid>/stat before and after the job",
        "job_seconds": round(job["finished_at"] - job["created_at"], 2),
        "wall_seconds": round(run["wall"], 2),
        "cpu_seconds": cpu,
        "pool_ms_per_poster_per_core": round(1000 * sum(cpu[name] for name in pool) / len(posters), 1),
        "pool_ms_per_poster_by_process": {name: round(1000 * cpu[name] / len(posters), 1) for name in pool},
        **run["spied"], "py_spy_said": run["py_spy_said"],
        "batches": batches,
        "redis_per_batch": {key: round((after[key] - before[key]) / batches, 1) if batches else None
                            for key in ("commands", "read_events")},
        "posters": len(posters), "exactly_once": not run["problems"], "problems": run["problems"],
        "model": model, "notes": NOTES, "provenance": produced}


def main() -> int:
    """Profile, write bench/results/profile-service-<time>.json, print it."""
    args = module_parser(__doc__, 1000, 120).parse_args()
    figures = measure(chosen_posters(args))
    path = RESULTS / f"profile-service-{time.strftime('%Y%m%d-%H%M')}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"written: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
