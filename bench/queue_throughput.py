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
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.service import ROOT, Service, forget_keys, link_posters, provenance  # noqa: E402 (after the sys.path line)
from posterq.bundle import load_bundle  # noqa: E402
from posterq.config import SERVICE_BATCH_SIZE, Settings  # noqa: E402


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
        service = Service(env, tmp, ("--workers", "2"))
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
            forget_keys(redis_url, prefix)
        for processes in args.processes:
            run = run_label(folder, str(bundle.path), processes, args.batch_size,
                            tmp / f"label-{processes}.csv")
            label_runs.append(run)
            print(f"posterq label, {processes} process(es): {run['posters_per_second']} posters/s "
                  f"({run['seconds']} s; wall {run['wall_s']} s)", flush=True)

    produced = provenance()
    result = {
        "benchmark": "queue_throughput",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "git": produced["git"],
        "model": {**bundle.model_id, "path": str(bundle.path), "sha256": bundle.meta["sha256"]},
        "data": {"folder": str(args.data), "posters": args.count,
                 "selection": "first N files, sorted by name"},
        "settings": {"batch_size": args.batch_size, "submission": "upload" if args.upload else "directory",
                     "redis": redis_url.rsplit("@", 1)[-1], "interpreter_threads": "cores // processes"},
        "machine": {**produced["machine"], "loadavg_before": [round(v, 2) for v in load_before],
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
