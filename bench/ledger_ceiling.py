"""How far one PostgreSQL goes for posterq's writes: rows/s of Ledger.write in a tight loop, nothing else.

    .venv/bin/python -m bench.ledger_ceiling [--database-url URL] [--writers 1 4 8] [--batches 2 64] \
        [--rounds 2] [--quick]

bench.big_job runs it as its third part (the README's "how far one PostgreSQL goes" comes from
there); alone it prints the figures as JSON. Each scenario empties the bench's own database
(default postgresql://postgres@127.0.0.1:5432/posterq_bench, created if missing), writes pending
rows with Ledger.create (COPY), then starts `writers` processes that wait at a barrier and fill
them in with posterq.jobs.ledger.Ledger.write, `batch` outcomes a transaction (a worker's batch:
the job row locked, the rows updated with RETURNING in one pipeline, the counts moved, the finish
check), each outcome a real result's shape (24 scores, 2 genres). Two ways: every writer on ONE
job (a big job: each transaction locks the same job row) and each writer on its own job (many
jobs: the database's own ceiling). A writer stops at the deadline or when its rows run out;
rows/s = rows written / the longest writer's seconds. Every scenario runs --rounds times,
interleaved, and its best round counts. The writers share this machine's cores with PostgreSQL,
so the figure is a floor for a database host of its own.
"""

import argparse
import json
import multiprocessing
import sys
import time

import psycopg

from bench.service import provenance
from posterq.genres import GENRES
from posterq.jobs.database import Database
from posterq.jobs.keys import new_job_id
from posterq.jobs.ledger import Ledger
from tests.harness import ensure_database

#: The bench's own database (never the service's or the tests').
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/posterq_bench"
WRITERS, BATCHES = (1, 4, 8), (2, 64)
SECONDS, QUICK_SECONDS = 8.0, 3.0
#: Rounds of every scenario, interleaved, each scenario's best counting: the machine is shared, and
#: another process's burst in one run should not decide a ceiling.
ROUNDS = 2
#: Pending rows made for a scenario, in all: more than its writers fill in SECONDS on this
#: machine (about 500 rows/s at batch 2 and 4,000 at 64 in a trial), so the deadline ends it.
ROWS = {2: 20_000, 64: 100_000}
QUICK_ROWS = {2: 4_000, 64: 20_000}


def fresh_database(url: str) -> None:
    """Create the database unless it exists, bring its schema up to date and empty it."""
    ensure_database(url)
    database = Database(url, pool_size=1)
    database.migrate()
    database.close()
    with psycopg.connect(url, autocommit=True) as connection:
        # TRUNCATE, not DELETE: the files shrink, so sizes measured next start from nothing.
        connection.execute("TRUNCATE posterq_results, posterq_jobs")


def database_facts(url: str) -> dict:
    """The server's version and the settings that decide its write speed."""
    with psycopg.connect(url, autocommit=True) as connection:
        facts = {name: connection.execute(f"SHOW {name}").fetchone()[0]
                 for name in ("server_version", "synchronous_commit", "fsync", "shared_buffers",
                              "wal_level", "max_connections")}
    return facts


def _result(index: int) -> dict:
    # What a worker writes for one poster (posterq.results.row plus its place and worker).
    scores = {genre: round(((index * 7919 + n * 104729) % 10_000) / 10_000, 4)
              for n, genre in enumerate(GENRES)}
    return {"index": index, "name": f"part-0000/poster-{index:07d}.jpg",
            "path": f"part-0000/poster-{index:07d}.jpg", "genres": ["Drama", "Romance"], "error": None,
            "scores": scores, "worker": "bench-ledger@localhost"}


def make_job(ledger: Ledger, rows: int) -> str:
    """A finished-listing directory job with `rows` pending result rows; its id."""
    job_id = new_job_id()
    record = {"id": job_id, "owner": "", "source": "directory", "lane": "bulk", "tenant": job_id,
              "created_at": time.time(), "enumerated": True, "directory": "/bench", "recursive": True}
    items = [{"name": f"part-{i // 1000:04d}/poster-{i:07d}.jpg", "path": f"/bench/poster-{i:07d}.jpg"}
             for i in range(rows)]
    ledger.create(record, items)
    return job_id


def writer(url: str, job_id: str, first: int, rows: int, batch: int, seconds: float, barrier,
           answers) -> None:
    """Fill in rows first..first+rows of a job, `batch` a transaction, until they or the seconds run out."""
    database = Database(url, pool_size=1)
    ledger = Ledger(database)
    model = {"name": "bench", "version": "0.0.0", "genres": list(GENRES)}
    results = [_result(index) for index in range(first, first + rows)]
    database.ping()  # connected before the clock starts
    barrier.wait()
    started = time.perf_counter()
    written = transactions = 0
    while written < rows and time.perf_counter() - started < seconds:
        chunk = results[written:written + batch]
        done, _ = ledger.write([(job_id, result["index"], result, "ok") for result in chunk], model,
                               time.time())
        if len(done) != len(chunk):
            raise AssertionError(f"wrote {len(done)} of {len(chunk)} rows: were they pending?")
        written += len(chunk)
        transactions += 1
    answers.put({"rows": written, "transactions": transactions, "seconds": time.perf_counter() - started,
                 "ran_out": written >= rows})
    database.close()


def scenario(url: str, writers: int, batch: int, one_job: bool, seconds: float, rows: int) -> dict:
    """rows/s of `writers` processes writing `batch` rows a transaction, on one job or a job each."""
    fresh_database(url)
    database = Database(url, pool_size=1)
    ledger = Ledger(database)
    per_writer = rows // writers
    if one_job:
        job_id = make_job(ledger, per_writer * writers)
        plan = [(job_id, n * per_writer) for n in range(writers)]
    else:
        plan = [(make_job(ledger, per_writer), 0) for _ in range(writers)]
    database.close()
    context = multiprocessing.get_context("spawn")  # a child must not inherit this process's sockets
    barrier, answers = context.Barrier(writers), context.Queue()
    processes = [context.Process(target=writer, args=(url, job_id, first, per_writer, batch, seconds, barrier,
                                                      answers)) for job_id, first in plan]
    for process in processes:
        process.start()
    found = [answers.get(timeout=seconds + 300) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    written = sum(entry["rows"] for entry in found)
    longest = max(entry["seconds"] for entry in found)
    return {"writers": writers, "batch": batch, "jobs": "one job" if one_job else "a job per writer",
            "rows": written, "seconds": round(longest, 2), "rows_per_second": round(written / longest, 1),
            "transactions_per_second": round(sum(entry["transactions"] for entry in found) / longest, 1),
            "ran_out_of_rows": any(entry["ran_out"] for entry in found)}


def measure_ceiling(url: str = DATABASE_URL, quick: bool = False, writers=WRITERS, batches=BATCHES,
                    rounds: int | None = None) -> dict:
    """Each scenario (writers x batch x one job or a job each), `rounds` times interleaved; its best."""
    seconds = QUICK_SECONDS if quick else SECONDS
    rounds = rounds or (1 if quick else ROUNDS)
    runs = []
    for number in range(rounds):
        for batch in batches:
            budget = (QUICK_ROWS if quick else ROWS).get(batch, 2_000 * batch)
            for count in writers:
                for one_job in (True, False):
                    runs.append({"round": number, **scenario(url, count, batch, one_job, seconds, budget)})
                    print(f"ledger, round {number + 1}: {count} writers, batch {batch}, {runs[-1]['jobs']}: "
                          f"{runs[-1]['rows_per_second']} rows/s", flush=True)
    fresh_database(url)
    scenarios = []
    for batch in batches:
        for count in writers:
            for jobs in ("one job", "a job per writer"):
                mine = [run for run in runs
                        if (run["batch"], run["writers"], run["jobs"]) == (batch, count, jobs)]
                scenarios.append({"writers": count, "batch": batch, "jobs": jobs,
                                  "rows_per_second": max(run["rows_per_second"] for run in mine),
                                  "every_round": [run["rows_per_second"] for run in mine]})

    def best(batch: int, jobs: str) -> float | None:
        rates = [entry["rows_per_second"] for entry in scenarios
                 if (entry["batch"], entry["jobs"]) == (batch, jobs)]
        return max(rates) if rates else None

    return {"scenarios": scenarios, "runs": runs, "seconds_per_run": seconds, "rounds": rounds,
            "database": database_facts(url),
            "best_rows_per_second": {f"batch_{batch}_{'one_job' if jobs == 'one job' else 'job_per_writer'}":
                                     best(batch, jobs) for batch in batches
                                     for jobs in ("one job", "a job per writer")}}


def main() -> int:
    """Measure alone; print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DATABASE_URL, help=f"the bench's database ({DATABASE_URL})")
    parser.add_argument("--writers", type=int, nargs="+", default=list(WRITERS), help="writer processes")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES), help="rows per transaction")
    parser.add_argument("--rounds", type=int, default=None, help=f"runs of each scenario ({ROUNDS}; quick 1)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS} s a scenario, fewer rows")
    args = parser.parse_args()
    figures = measure_ceiling(args.database_url, args.quick, args.writers, args.batches, args.rounds)
    print(json.dumps({"provenance": provenance(), **figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
