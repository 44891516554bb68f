"""What bench.big_job measures with: folders of hard links, the tests' tiny model, and one directory job
watched (its row in PostgreSQL, Redis's memory, the API's RSS while it downloads, a cancel)."""

import hashlib
import importlib.util
import inspect
import io
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import redis
from tqdm import tqdm

from bench.memory import children
from bench.service import ROOT, Service
from posterq.client import ServiceClient
from posterq.jobs.keys import JobStatus, Keys

#: Files per subfolder of a linked folder.
PER_FOLDER = 1000
#: Links per source copy at most: ext4 allows 65,000 per file.
LINKS_PER_FILE = 60_000
#: Seconds between Redis samples, job-row polls, RSS samples, and polls after a DELETE.
REDIS_INTERVAL, POLL, RSS_INTERVAL, CANCEL_POLL = 0.05, 0.1, 0.02, 0.01
#: Seconds without a new result after a DELETE before the job counts as stopped.
QUIET = 3.0
#: Seconds a job may take before the run is called stuck.
JOB_TIMEOUT = 3 * 3600
TINY_CACHE = ROOT / "runs" / "cache"


class Sampler(threading.Thread):
    """Calls read() every `interval` s until stopped; keeps (time.monotonic(), reading) pairs."""

    def __init__(self, read, interval: float):
        super().__init__(daemon=True)
        self.read, self.interval = read, interval
        self.series: list[tuple[float, object]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        """Sample until stopped; a failed reading is skipped."""
        while not self.halt.is_set():
            try:
                value = self.read()
            except (redis.RedisError, psycopg.Error, OSError):
                value = None
            if value is not None:
                self.series.append((time.monotonic(), value))
            self.halt.wait(self.interval)

    def latest(self):
        """The last reading (None before the first)."""
        return self.series[-1][1] if self.series else None

    def stop(self) -> list[tuple[float, object]]:
        """Stop sampling (if it ever started); the series."""
        self.halt.set()
        if self.is_alive():
            self.join(timeout=30)
        return self.series


# ---------------------------------------------------------------------------------------------
# The folders and the tiny model
# ---------------------------------------------------------------------------------------------


class Folders:
    """Folders of hard links to copies of a few posters, in subfolders of PER_FOLDER, under one data root."""

    def __init__(self, root: Path, posters: list[Path], links: int):
        # Copies, not DATA's own files: links need the same file system, and DATA is read only.
        copies = max(len(posters), math.ceil(links / LINKS_PER_FILE))
        (root / "sources").mkdir(parents=True)
        self.sources = []
        for n in range(copies):
            source = posters[n % len(posters)]
            self.sources.append(root / "sources" / f"{n:06d}{source.suffix.lower()}")
            shutil.copyfile(source, self.sources[-1])
        self.root = root / "data"

    def make(self, name: str, count: int) -> Path:
        """A folder of count links: file n of it links source n (cycling)."""
        folder = self.root / name
        bar = tqdm(range(count), desc=f"linking {name}", unit="file", mininterval=2, disable=count < 10_000)
        for n in bar:
            if n % PER_FOLDER == 0:
                sub = folder / f"part-{n // PER_FOLDER:04d}"
                sub.mkdir(parents=True)
            source = self.sources[n % len(self.sources)]
            os.link(source, sub / f"poster-{n:07d}{source.suffix}")
        return folder


def tests_samples():
    """tests/samples.py (the tests' images and tiny model), loaded from its file: tests/ is no package."""
    spec = importlib.util.spec_from_file_location("samples", ROOT / "tests" / "samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_bundle(folder: Path) -> Path:
    """The tests' tiny TFLite bundle (tests/samples.py) written into folder; the .tflite cached by recipe."""
    from posterq.training.bundle_io import write_bundle

    samples = tests_samples()
    recipe = inspect.getsource(samples.tiny_tflite) + repr((samples.TINY_INPUT, samples.TINY_SEED))
    cache = TINY_CACHE / f"tiny-{hashlib.sha256(recipe.encode()).hexdigest()[:16]}.tflite"
    if not cache.is_file():
        # TensorFlow in a subprocess: it takes a minute and a gigabyte this process would keep.
        cache.parent.mkdir(parents=True, exist_ok=True)
        code = ("import sys; from bench.big_folder import tests_samples; "
                "open(sys.argv[1], 'wb').write(tests_samples().tiny_tflite())")
        partial = cache.with_suffix(".partial")
        print("building the tiny model with TensorFlow (once)", flush=True)
        subprocess.run([sys.executable, "-c", code, str(partial)], cwd=ROOT, check=True, capture_output=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        partial.replace(cache)
    return write_bundle(folder / "tiny", cache.read_bytes(), samples.bundle_meta())


# ---------------------------------------------------------------------------------------------
# Readings
# ---------------------------------------------------------------------------------------------


def mb(value: float) -> float:
    """Bytes in MB (2**20), rounded."""
    return round(value / 2**20, 2)


def redis_reading(client: redis.Redis, keys: Keys) -> tuple[int, int, int]:
    """used_memory, posters waiting for a batch, posters in claimed batches."""
    pipe = client.pipeline(transaction=False)
    pipe.info("memory")
    pipe.hget(keys.waiting, "total")
    pipe.zrange(keys.claims, 0, -1)
    memory, waiting, claims = pipe.execute()
    in_batches = 0
    if claims:
        pipe = client.pipeline(transaction=False)
        for batch in claims:
            pipe.llen(keys.batch(batch.decode()))
        in_batches = sum(pipe.execute())
    return int(memory["used_memory"]), int(waiting or 0), in_batches


_JOB = "status, total, done, failed, enumerated, created_at, started_at, finished_at"


def job_row(connection, job_id: str) -> dict:
    """The job's row as PostgreSQL has it now."""
    row = connection.execute(f"SELECT {_JOB} FROM posterq_jobs WHERE id = %s", (job_id,)).fetchone()
    return dict(zip(_JOB.split(", "), row, strict=True))


def written(row: dict) -> int:
    """Posters of a job row with a result."""
    return row["done"] + row["failed"]


def check_rows(connection, job_id: str, files: int) -> dict:
    """Every file has exactly one item row, with a result: counted by PostgreSQL."""
    count, distinct, pending, first, last = connection.execute(
        "SELECT count(*), count(DISTINCT items.idx), count(*) FILTER (WHERE results.idx IS NULL), "
        "min(items.idx), max(items.idx) FROM posterq_items AS items LEFT JOIN posterq_results AS results "
        "ON results.job_id = items.job_id AND results.idx = items.idx WHERE items.job_id = %s",
        (job_id,)).fetchone()
    return {"rows": count, "distinct_idx": distinct, "pending": pending, "min_idx": first, "max_idx": last,
            "one_row_per_file": (count, distinct, pending, first, last) == (files, files, 0, 0, files - 1)}


def table_size(connection) -> dict:
    """The results table's size on disk per row (heap, TOAST and indexes), and its dead tuples.

    items_bytes_per_row: the items table's (name and path of each poster, posterq.jobs.ledger) beside it.
    """
    connection.execute("ANALYZE posterq_results")  # fresh n_live_tup and n_dead_tup
    total, heap, indexes, rows, items = connection.execute(
        "SELECT pg_total_relation_size('posterq_results'), pg_relation_size('posterq_results'), "
        "pg_indexes_size('posterq_results'), (SELECT count(*) FROM posterq_results), "
        "pg_total_relation_size('posterq_items')").fetchone()
    live, dead = connection.execute("SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables "
                                    "WHERE relname = 'posterq_results'").fetchone()
    rows = max(rows, 1)
    return {"rows": rows, "total_mb": mb(total), "bytes_per_row": round(total / rows),
            "heap_bytes_per_row": round(heap / rows), "index_bytes_per_row": round(indexes / rows),
            "items_bytes_per_row": round(items / rows), "live_tuples": live, "dead_tuples": dead}


def rss(pid: int) -> int:
    """VmRSS of a process in bytes."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


# ---------------------------------------------------------------------------------------------
# One job, watched
# ---------------------------------------------------------------------------------------------


class Bench:
    """The running service, its Redis and database, and one database connection for the main thread."""

    def __init__(self, service: Service, database_url: str):
        self.service, self.url, self.database_url = service, service.url, database_url
        self.client = ServiceClient(service.url, timeout=600)  # the main thread's; a CSV download is long
        self.settings = service.settings
        self.keys = Keys(self.settings.key_prefix)
        self.redis = redis.Redis.from_url(self.settings.redis_url)
        self.sql = psycopg.connect(database_url, autocommit=True)

    def connect(self):
        """A database connection of its own (one per thread)."""
        return psycopg.connect(self.database_url, autocommit=True)


class Watch:
    """One directory job: POSTed, its row polled every POLL s and Redis sampled every REDIS_INTERVAL s."""

    def __init__(self, bench: Bench, folder: Path, files: int, label: str, sample_redis: bool = True):
        self.bench, self.folder, self.files, self.label = bench, folder, files, label
        # Off where Redis's own CPU is measured: the samples' INFO calls would count in it.
        self.redis = Sampler(lambda: redis_reading(bench.redis, bench.keys), REDIS_INTERVAL)
        if sample_redis:
            self.redis.start()
            time.sleep(1.0)  # a second of the idle service: Redis's baseline
        self.sent = time.monotonic()
        self.answer = bench.client.submit_directory(folder)
        self.answered = time.monotonic()
        self.id = self.answer["id"]
        self._sql = bench.connect()
        self.progress = Sampler(lambda: job_row(self._sql, self.id), POLL)
        self.progress.start()

    def wait(self, until, what: str) -> dict:
        """Wait (with a progress bar) until until(row); the row then."""
        deadline = time.monotonic() + JOB_TIMEOUT
        with tqdm(total=self.files, desc=f"{self.label}: {what}", unit="poster", mininterval=2) as bar:
            while time.monotonic() < deadline:
                row = self.progress.latest()
                if row is not None:
                    bar.update(written(row) - bar.n)
                    if until(row):
                        return row
                time.sleep(0.2)
        raise AssertionError(f"job {self.id} ({self.label}) not {what} after {JOB_TIMEOUT} s")

    def final(self) -> dict:
        """Wait until the job is final; its row."""
        return self.wait(lambda row: JobStatus(row["status"]).final, "to the end")

    def stop(self) -> None:
        """Stop sampling."""
        self.redis.stop()
        self.progress.stop()
        self._sql.close()

    def when(self, test) -> float | None:
        """Seconds from the POST to the first poll at which test(row) held."""
        return next((round(t - self.sent, 3) for t, row in self.progress.series if test(row)), None)

    def crossing(self, count: int) -> float | None:
        """When `count` posters had a result (time.monotonic()), interpolated between polls."""
        previous = None
        for t, row in self.progress.series:
            if written(row) >= count:
                if previous is None or written(row) == previous[1]:
                    return t
                (t0, w0), w1 = previous, written(row)
                return t0 + (t - t0) * (count - w0) / (w1 - w0)
            previous = (t, written(row))
        return None

    def rate(self, start: int, stop: int) -> float | None:
        """Posters/s between `start` and `stop` posters done."""
        begin, end = self.crossing(start), self.crossing(stop)
        return round((stop - start) / (end - begin), 1) if begin is not None and end and end > begin else None

    def post_figures(self) -> dict:
        """The POST's answer and the listing."""
        return {"files": self.files, "job": self.id, "post_answer_s": round(self.answered - self.sent, 3),
                "answered_total": self.answer["total"], "answered_enumerated": self.answer["enumerated"],
                "enumerated_after_s": self.when(lambda row: row["enumerated"])}

    def redis_figures(self, job_window: int) -> dict | None:
        """Redis used_memory through the job: baseline, peak, growth, and per in-flight poster."""
        before = [value[0] for t, value in self.redis.series if t < self.sent]
        during = [value for t, value in self.redis.series if t >= self.sent]
        if not before or not during:
            return None
        baseline = statistics.median(before)
        peak = max(value[0] for value in during)
        in_batches = max(value[2] for value in during)
        most = max(value[1] + value[2] for value in during)
        growth = max(0, peak - baseline)
        # A job smaller than the window holds all its posters at once.
        in_flight = min(job_window, self.files) + in_batches
        return {"baseline_mb": mb(baseline), "peak_mb": mb(peak), "growth_mb": mb(growth),
                "retained_mb": mb(during[-1][0] - baseline), "samples": len(during),
                "max_posters_waiting": max(value[1] for value in during),
                "max_posters_in_batches": in_batches,
                "bytes_per_in_flight_poster": round(growth / in_flight),
                # Where top-ups raced, more than the window was in flight: per poster seen at most.
                "most_in_flight": most, "bytes_per_poster_most_in_flight": round(growth / most),
                "bytes_per_poster_of_the_job": round(growth / self.files, 1)}

    def finished(self, row: dict) -> dict:
        """A finished job's figures: POST, listing, Redis, rows/s, the SQL checks."""
        return {**self.post_figures(), "status": row["status"], "total": row["total"], "done": row["done"],
                "failed": row["failed"], "seconds": round(row["finished_at"] - row["created_at"], 2),
                "rows_per_second": round(written(row) / (row["finished_at"] - row["started_at"]), 1),
                "redis": self.redis_figures(self.bench.settings.job_window),
                "check": check_rows(self.bench.sql, self.id, self.files)}

    def series(self, points: int = 400) -> dict:
        """The polled progress and the Redis samples, thinned to about `points` each, from the POST."""
        def thin(rows):
            step = max(1, len(rows) // points)
            return rows[::step] + rows[-1:]
        return {"progress": [[round(t - self.sent, 2), written(row), row["total"]]
                             for t, row in thin(self.progress.series)],
                "redis_used_mb": [[round(t - self.sent, 2), mb(value[0])]
                                  for t, value in thin(self.redis.series)]}

    def cancel(self) -> dict:
        """DELETE the job; seconds until its last result was written, and whether its listing stopped."""
        sql = self.bench.connect()
        poll = Sampler(lambda: job_row(sql, self.id), CANCEL_POLL)
        poll.start()
        time.sleep(0.2)
        at_delete = poll.latest()
        sent, sent_wall = time.monotonic(), time.time()
        self.bench.client.cancel(self.id)
        answered = time.monotonic()
        time.sleep(QUIET)
        series = poll.stop()
        final = series[-1][1]
        # The first poll that saw the final count: the last result landed before it.
        settled = next(t for t, row in series if written(row) == written(final))
        listed_then = next(row["total"] for t, row in series if t >= answered)
        last_row = sql.execute("SELECT max(finished_at) FROM posterq_results WHERE job_id = %s",
                               (self.id,)).fetchone()[0]
        sql.close()
        return {"cancelled_at": written(at_delete), "delete_answer_s": round(answered - sent, 3),
                "results_stopped_after_s": round(max(0.0, settled - sent), 3),
                "last_result_after_delete_s": round(last_row - sent_wall, 3) if last_row else None,
                "written_after_delete": written(final) - written(at_delete), "status": final["status"],
                "listed_at_delete": at_delete["total"], "listed_after": final["total"],
                "listing_stopped": final["total"] == listed_then, "enumerated": final["enumerated"],
                "ready_left_in_redis": self.bench.redis.llen(self.bench.keys.ready(self.id))}


class Counted(io.RawIOBase):
    """A binary stream that keeps nothing: it counts the lines written to it."""

    def __init__(self):
        super().__init__()
        self.lines = 0

    def writable(self) -> bool:
        """Yes: it is written to."""
        return True

    def write(self, chunk) -> int:
        """Count the chunk's newlines; drop it."""
        self.lines += bytes(chunk).count(b"\n")
        return len(chunk)


def download(bench: Bench, job_id: str, files: int) -> dict:
    """The job's CSV streamed: seconds, rows, bytes, and the API processes' RSS growth meanwhile."""
    pids = [bench.service.api.pid, *children(bench.service.api.pid)]
    before = {pid: rss(pid) for pid in pids}
    sampler = Sampler(lambda: {pid: rss(pid) for pid in pids}, RSS_INTERVAL)
    sampler.start()
    started, counted = time.monotonic(), Counted()
    size, lines = bench.client.download(job_id, counted), counted.lines
    seconds = time.monotonic() - started
    samples = [value for _, value in sampler.stop()]
    growth = {str(pid): mb(max(sample[pid] for sample in samples) - before[pid]) for pid in pids}
    together = max(sum(sample.values()) for sample in samples) - sum(before.values())
    return {"seconds": round(seconds, 2), "rows": lines - 1, "all_rows": lines - 1 == files, "mb": mb(size),
            "rows_per_second": round((lines - 1) / seconds), "api_processes": len(pids),
            "api_rss_before_mb": mb(sum(before.values())), "api_rss_peak_growth_mb": mb(together),
            "peak_growth_mb_by_pid": growth, "rss_samples": len(samples)}
