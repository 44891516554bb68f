"""How far one Redis and one PostgreSQL go: worker processes with a model that costs next to nothing,
raised until posters/s stops growing, and the CPU of Redis, PostgreSQL, the workers and the machine.

    .venv/bin/python -m bench.ceiling [--processes 1 2 4 8 16] [--posters 6000] [--jobs 1 8] [--per-host 2] \
        [--redis-url URL] [--database-url URL] [--host-rate P] [--quick] [--out DIR]

The model is the tests' tiny bundle (tests/samples.py: a 48x32 input, one small convolution; built
once with TensorFlow in a subprocess and cached in runs/cache/, bench.big_folder.tiny_bundle), a
bundle the runtime loads like any other; the posters are --posters distinct generated images of
about 60x90 pixels (tests/samples.py), so decoding and the invoke cost almost nothing and what
saturates is the queue, the store and the workers' own per-task work. No setting of the runtime
changes: the API and the workers run with their defaults, except one interpreter thread a process
(POSTERQ_THREADS=1, POSTERQ_SOLO_THREADS=1: no second interpreter) and the tiny model.

The service: a redis-server of its own (append-only, as docker-compose.yml runs it; --redis-url
uses a given Redis under a private prefix instead, whose CPU then counts every client's work), the
database --database-url (default posterq_bench_ceiling on 127.0.0.1, created if missing, emptied
before each measurement), `posterq api`, and worker hosts of --per-host processes each (`posterq worker
--concurrency`; a step of one process has one host of one). For each count of worker processes
(--processes, in order) it starts or stops hosts, runs a warm-up job, measures the idle service for
a few seconds, then POSTs the posters as one directory job and waits for it (the job row polled in
PostgreSQL every 0.2 s); posters/s = posters / (final - POST). With --jobs 1 8, at every step the
same posters are also split into 8 folders posted together as 8 jobs (the database emptied in
between), side by side with the one job. Meanwhile bench.proc_cpu reads every 0.5 s, from /proc,
the CPU of: redis-server (INFO server process_id), this database's PostgreSQL backends
(pg_stat_activity, which also counts those waiting on a lock), PostgreSQL's background processes
(server-wide: other databases' work counts too), the worker hosts (Celery's main processes and
their pool processes apart), the API's processes, this benchmark, and the whole machine
(/proc/stat). It stops after the step that makes posters/s stop growing (two steps in a row under
1.05 x the best before them, for the first --jobs value).

From the CPU per poster at the ceiling: the posters/s one Redis core and one PostgreSQL core can
feed, and how many worker hosts with the real model (--host-rate posters/s; default: the latest
bench.all "service, default settings" figure in bench/results) that is. Writes
bench/results/ceiling-<time>.json and a plot beside it, and prints a summary.
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psycopg
import redis

from bench.big_folder import check_rows, job_row, tests_samples, tiny_bundle, written
from bench.ceiling_report import plot, summary
from bench.ledger_ceiling import database_facts, fresh_database
from bench.memory import children
from bench.proc_cpu import GroupCPU
from bench.service import RESULTS, Service, bench_settings, client, provenance
from posterq.jobs.keys import JobStatus
from tests.harness import RedisServer

DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/posterq_bench_ceiling"
PROCESSES, QUICK_PROCESSES = (1, 2, 4, 8, 16), (1, 2, 4)
POSTERS, QUICK_POSTERS = 6000, 600
PER_HOST = 2
#: Seconds of the idle service measured before each measurement: its own polling and heartbeats.
IDLE, QUICK_IDLE = 3.0, 1.0
#: A step "grows" when it beats the best before it by this much; two steps in a row that do not end the run.
GROWTH, FLAT_STEPS = 1.05, 2
POLL, JOB_TIMEOUT = 0.2, 900


def layout(processes: int, per_host: int) -> list[int]:
    """Worker hosts' process counts for a number of processes: hosts of per_host, the last one smaller."""
    full, rest = divmod(processes, per_host)
    return [per_host] * full + ([rest] if rest else [])


class Bench:
    """The service, its Redis and database, and the hosts running now."""

    def __init__(self, service: Service, redis_client: redis.Redis, database_url: str):
        self.service, self.redis, self.database_url = service, redis_client, database_url
        self.database = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
        self.sql = psycopg.connect(database_url, autocommit=True)
        self.redis_pid = int(redis_client.info("server")["process_id"])
        self.hosts: list[tuple[int, object]] = []
        self.lock_waits: list[int] = []

    def resize(self, processes: int, per_host: int) -> list[int]:
        """Keep the hosts that match the layout, stop the others, start what is missing; the layout."""
        wanted = layout(processes, per_host)
        keep = 0
        while keep < min(len(wanted), len(self.hosts)) and self.hosts[keep][0] == wanted[keep]:
            keep += 1
        for _, worker in self.hosts[keep:]:
            self.service.stop_worker(worker)
        self.hosts = self.hosts[:keep]
        started = [(count, self.service.start_worker(count, name=f"h{n}x{count}", wait=False))
                   for n, count in enumerate(wanted[keep:], start=keep)]
        for _, worker in started:
            worker.wait_ready(timeout=120)
        self.hosts += started
        return wanted

    def finder(self):
        """What bench.proc_cpu samples: each group's pids (workers and API found once, here)."""
        main = [worker.pid for _, worker in self.hosts]
        pool = [pid for pid in main for pid in children(pid)]
        api = [self.service.api.pid, *children(self.service.api.pid)]
        self.lock_waits = []

        def find() -> dict[str, list[int]]:
            # On the main thread's connection (psycopg serializes its use), so that the job polls'
            # backend, left out as pg_backend_pid(), is never counted as the service's.
            rows = self.sql.execute("SELECT pid, datname = %s, backend_type, wait_event_type "
                                    "FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
                                    (self.database,)).fetchall()
            self.lock_waits.append(sum(1 for _, mine, _, wait in rows if mine and wait == "Lock"))
            return {"redis": [self.redis_pid], "postgres": [pid for pid, mine, _, _ in rows if mine],
                    "postgres_background": [pid for pid, mine, kind, _ in rows
                                            if not mine and kind != "client backend"],
                    "workers_main": main, "workers_pool": pool, "api": api, "bench": [os.getpid()]}
        return find

    def jobs(self, folders: list[Path]) -> tuple[list[dict], float]:
        """POST each folder as a directory job, then wait until all are final (in SQL); rows, seconds."""
        sent = time.monotonic()
        with client(self.service.url) as http:
            ids = [http.submit_directory(folder)["id"] for folder in folders]
        deadline = sent + JOB_TIMEOUT
        while time.monotonic() < deadline:
            rows = [{"id": job_id, **job_row(self.sql, job_id)} for job_id in ids]
            if all(JobStatus(row["status"]).final for row in rows):
                return rows, time.monotonic() - sent
            time.sleep(POLL)
        raise AssertionError(f"jobs {ids} not final after {JOB_TIMEOUT} s")

    def close(self) -> None:
        """Close this benchmark's connections."""
        self.sql.close()
        self.redis.close()


def per_poster(window: dict, posters: int) -> dict:
    """A proc_cpu window's CPU as cores used and as µs a poster, by group."""
    seconds = window["seconds"]
    return {"cores": {group: round(cpu / seconds, 3) for group, cpu in window["cpu_s"].items()},
            "usec_per_poster": {group: round(1e6 * cpu / posters, 1)
                                for group, cpu in window["cpu_s"].items()}}


def run(bench: Bench, folders: list[Path], posters: int, idle_seconds: float) -> dict:
    """The idle service on an empty database for a few seconds, then the folders as jobs posted together."""
    fresh_database(bench.database_url)
    idle = GroupCPU(bench.finder())
    idle.start()
    time.sleep(idle_seconds)
    idle = idle.stop()
    window = GroupCPU(bench.finder())
    window.start()
    rows, seconds = bench.jobs(folders)
    window = window.stop()
    loaded, quiet = per_poster(window, posters), per_poster(idle, posters)
    idle_cores = quiet["cores"]
    above_idle = {group: round(1e6 * (window["cpu_s"][group] - idle_cores.get(group, 0) * window["seconds"])
                               / posters, 1) for group in window["cpu_s"]}
    rows_window = max(row["finished_at"] for row in rows) - min(row["started_at"] for row in rows)
    checks = [check_rows(bench.sql, row["id"], written(row)) for row in rows]
    return {"posters": posters, "jobs": len(rows), "job_ids": [row["id"] for row in rows],
            "statuses": sorted({row["status"] for row in rows}), "seconds": round(seconds, 2),
            "posters_per_second": round(posters / seconds, 1),
            "rows_per_second_started_to_finished": round(sum(map(written, rows)) / rows_window, 1),
            "check": {"rows": sum(check["rows"] for check in checks), "one_row_per_file":
                      all(check["one_row_per_file"] for check in checks)
                      and sum(map(written, rows)) == posters},
            "machine_cores_busy": round(window["machine_cores_busy"], 3), **loaded,
            "usec_per_poster_above_idle": above_idle,
            "idle_cores": idle_cores, "idle_machine_cores_busy": round(idle["machine_cores_busy"], 3),
            "processes_seen": window["processes"], "cpu_samples": window["samples"],
            "postgres_lock_waiters_mean": round(sum(bench.lock_waits) / max(1, len(bench.lock_waits)), 2),
            "loadavg_after": [round(v, 2) for v in os.getloadavg()]}


def layouts(source: Path, posters: list[Path], jobs: list[int]) -> dict[int, list[Path]]:
    """For each count of jobs, that many folders of hard links splitting the posters between them."""
    folders = {}
    for count in jobs:
        folders[count] = [source.parent / f"{count}-jobs" / f"job-{n}" for n in range(count)]
        for folder in folders[count]:
            folder.mkdir(parents=True)
        for n, poster in enumerate(posters):
            os.link(poster, folders[count][n % count] / poster.name)
    return folders


def grown(rates: list[float]) -> bool:
    """False once the last FLAT_STEPS rates each stayed under GROWTH x the best before them."""
    if len(rates) <= FLAT_STEPS:
        return True
    return any(rates[n] >= GROWTH * max(rates[:n]) for n in range(len(rates) - FLAT_STEPS, len(rates)))


def recorded_host_rate() -> dict | None:
    """The latest bench.all "service, default settings" posters/s (real model) in bench/results."""
    for path in sorted(RESULTS.glob("all-*.json"), reverse=True):
        report = json.loads(path.read_text())
        figures = report.get("results", {}).get("scale", {}).get("figures", {})
        if figures.get("default_posters_per_second"):
            return {"posters_per_second": figures["default_posters_per_second"], "file": path.name,
                    "commit": report["git"]["commit"][:7], "model": report.get("model", {}).get("version")}
    return None


def measure(processes, posters: int, jobs: list[int], per_host: int, redis_url: str | None, database_url: str,
            quick: bool, host_rate: dict | None) -> dict:
    """Every step in order until posters/s (of the first count of jobs) stops growing; JSON-ready figures."""
    produced = provenance()
    steps, stopped_growing = [], False
    with tempfile.TemporaryDirectory(prefix="posterq-ceiling-") as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        samples = tests_samples()
        folder, warm = tmp / "posters", tmp / "warm"
        # Distinct posters (no two files share their bytes), split into each count of jobs.
        folders = layouts(folder / "all", samples.write_posters(folder / "all", posters), jobs)
        samples.write_posters(warm, 2 * max(processes), start=posters)
        private = not redis_url
        if private:
            server = RedisServer(tmp / "redis", "--appendonly", "yes", "--maxmemory-policy", "noeviction")
            stack.enter_context(server)
            redis_url = server.url
        fresh_database(database_url)
        settings = bench_settings("ceiling", model=str(tiny_bundle(tmp)), redis_url=redis_url,
                                  database_url=database_url, data_roots=(folder, warm), threads=1,
                                  solo_threads=1)
        service = stack.enter_context(Service(settings, tmp))
        bench = Bench(service, redis.Redis.from_url(redis_url), database_url)
        stack.callback(bench.close)
        for count in processes:
            hosts = bench.resize(count, per_host)
            bench.jobs([warm])
            for split in jobs:
                steps.append({"processes": count, "hosts": hosts,
                              **run(bench, folders[split], posters, QUICK_IDLE if quick else IDLE)})
                print(f"{count} worker processes ({len(hosts)} hosts), {split} jobs: "
                      f"{steps[-1]['posters_per_second']} posters/s; cores: {steps[-1]['cores']}, "
                      f"machine {steps[-1]['machine_cores_busy']}", flush=True)
            if not grown([entry["posters_per_second"] for entry in steps if entry["jobs"] == jobs[0]]):
                stopped_growing = True
                break
        facts = database_facts(database_url)
        redis_facts = {key: bench.redis.info("server")[key] for key in ("redis_version", "io_threads_active")}
        redis_facts.update(bench.redis.config_get("appendonly"))
        fresh_database(database_url)
    produced["machine"]["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    return {"name": "ceiling", "steps": steps, "stopped_growing": stopped_growing, "provenance": produced,
            "settings": {"processes": list(processes), "posters": posters, "jobs": jobs, "per_host": per_host,
                         "model": "tests/samples.py tiny bundle (48x32 input)", "threads": 1,
                         "solo_threads": 1, "batch_size": settings.batch_size,
                         "job_window": settings.job_window,
                         "redis": "a private redis-server" if private else redis_url,
                         "database": database_url,
                         "quick": quick},
            "redis": redis_facts, "database": facts, "host_rate": host_rate}


def main() -> int:
    """Measure, save the JSON and the plot, print the summary."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=None,
                        help=f"worker processes of each step ({' '.join(map(str, PROCESSES))}; quick "
                             f"{' '.join(map(str, QUICK_PROCESSES))})")
    parser.add_argument("--posters", type=int, default=None,
                        help=f"posters of a step ({POSTERS}; quick {QUICK_POSTERS})")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1],
                        help="directory jobs the posters are split into, posted together (1: one bulk job, "
                             "whose batches all lock its row); several: each measured at every step, the "
                             "first deciding when to stop")
    parser.add_argument("--per-host", type=int, default=PER_HOST,
                        help=f"processes a worker host ({PER_HOST})")
    parser.add_argument("--redis-url", default=None, help="a given Redis (default: a private redis-server)")
    parser.add_argument("--database-url", default=DATABASE_URL, help=f"the bench's database ({DATABASE_URL})")
    parser.add_argument("--host-rate", type=float, default=None,
                        help="posters/s of one worker host with the real model "
                             "(default: the latest bench.all)")
    parser.add_argument("--quick", action="store_true", help="fewer steps and posters")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="where the JSON and plot go (bench/results)")
    args = parser.parse_args()
    host_rate = {"posters_per_second": args.host_rate, "file": "--host-rate"} if args.host_rate \
        else recorded_host_rate()
    started = time.monotonic()
    report = measure(args.processes or (QUICK_PROCESSES if args.quick else PROCESSES),
                     args.posters or (QUICK_POSTERS if args.quick else POSTERS), args.jobs, args.per_host,
                     args.redis_url, args.database_url, args.quick, host_rate)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["command"] = " ".join(["python -m bench.ceiling", *sys.argv[1:]])
    report["summary"] = summary(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"ceiling-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, stem.with_suffix(".png"))
    print(json.dumps(report["summary"], indent=2))
    print(f"wrote {stem}.json and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
