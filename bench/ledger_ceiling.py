"""How far one PostgreSQL goes for posterq's writes: rows/s of Ledger.write in a tight loop, nothing else.

    .venv/bin/python -m bench.ledger_ceiling [--database-url URL] [--writers 1 4 8] \
        [--batches 2 16 64 256] [--rounds 2] [--quick] [--out DIR]

bench.big_job runs it as its third part; alone it prints the figures as JSON (and saves them
under --out). Each scenario empties the bench's own database (default
postgresql://postgres@127.0.0.1:5432/posterq_bench, created if missing), makes the jobs' items with
Ledger.create (COPY), then starts `writers` processes that wait at a barrier and write results
with posterq.jobs.ledger.Ledger.write, `batch` outcomes a call (a worker's batch: in PostgreSQL one
statement committed alone, which locks the batch's jobs, inserts the results once, moves the
counts and finishes a complete job; posterq.jobs.result_writes), each outcome a real result's
shape (24 scores, 2 genres). Two ways: every writer on ONE job (a big job: each batch locks the
same job row while its statement runs) and each writer on its own job (many jobs: the database's
own ceiling). A writer stops at the deadline or when its rows run out; rows/s = rows written /
the longest writer's seconds. After each scenario the results table's statistics (flushed by
every writer before it reports) say how many rows were inserted, updated and left dead. Every
scenario runs --rounds times, interleaved, and its best round counts. The writers share this
machine's cores with PostgreSQL, so the figure is a floor for a database host of its own.

The code measured is whichever `posterq` is imported: run it from another checkout's root (with
its PYTHONPATH) and its own database to measure another commit's Ledger.write beside this one.
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psycopg

from bench.service import RESULTS, git_commit, provenance, worktree
from posterq.cpu import describe
from posterq.genres import GENRES
from posterq.jobs.database import Database
from posterq.jobs.keys import new_job_id
from posterq.jobs.ledger import Ledger
from tests.harness import ensure_database

#: The bench's own database (never the service's or the tests').
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/posterq_bench"
WRITERS, BATCHES = (1, 4, 8), (2, 16, 64, 256)
SECONDS, QUICK_SECONDS = 8.0, 3.0
#: Rounds of every scenario, interleaved, each scenario's best counting: the machine is shared, and
#: another process's burst in one run should not decide a ceiling.
ROUNDS = 2
#: Items made for a scenario, in all: more than its writers write in SECONDS on this machine,
#: so that the deadline ends it (a scenario that ran out says so: ran_out_of_rows).
ROWS = {2: 40_000, 8: 100_000, 16: 150_000, 64: 250_000, 256: 300_000}
QUICK_ROWS = {2: 8_000, 8: 20_000, 16: 30_000, 64: 50_000, 256: 60_000}


def fresh_database(url: str) -> None:
    """Create the database unless it exists, bring its schema up to date and empty it."""
    ensure_database(url)
    database = Database(url, pool_size=1)
    database.migrate()
    database.close()
    with psycopg.connect(url, autocommit=True) as connection:
        # TRUNCATE, not DELETE: the files shrink, so sizes measured next start from nothing.
        connection.execute("TRUNCATE posterq_jobs CASCADE")  # and every table that refers to it


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
    """A finished-listing directory job of `rows` items, none with a result yet; its id."""
    job_id = new_job_id()
    record = {"id": job_id, "owner": "", "source": "directory", "lane": "bulk", "tenant": job_id,
              "created_at": time.time(), "enumerated": True, "directory": "/bench", "recursive": True}
    items = [{"name": f"part-{i // 1000:04d}/poster-{i:07d}.jpg", "path": f"/bench/poster-{i:07d}.jpg"}
             for i in range(rows)]
    ledger.create(record, items)
    return job_id


def writer(url: str, job_id: str, first: int, rows: int, batch: int, seconds: float, barrier,
           answers) -> None:
    """Write results first..first+rows of a job, `batch` a call, until they or the seconds run out."""
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
    with database.transaction() as tx:
        # This backend's statistics are flushed as it goes idle after this: the table's counts
        # read after the scenario then hold every write of it.
        tx.execute("SELECT pg_stat_force_next_flush()")
    answers.put({"rows": written, "transactions": transactions, "seconds": time.perf_counter() - started,
                 "ran_out": written >= rows})
    database.close()


def table_counts(url: str) -> dict:
    """The results table's statistics: rows inserted, updated and deleted so far, and dead tuples now."""
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute("SELECT n_tup_ins, n_tup_upd, n_tup_del, n_live_tup, n_dead_tup "
                                 "FROM pg_stat_user_tables WHERE relname = 'posterq_results'").fetchone()
    return dict(zip(("inserted", "updated", "deleted", "live", "dead"), row, strict=True))


def scenario(url: str, writers: int, batch: int, one_job: bool, seconds: float, rows: int) -> dict:
    """rows/s of `writers` processes writing `batch` rows a call, on one job or a job each."""
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
    before = table_counts(url)
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
    after = table_counts(url)
    return {"writers": writers, "batch": batch, "jobs": "one job" if one_job else "a job per writer",
            "rows": written, "seconds": round(longest, 2), "rows_per_second": round(written / longest, 1),
            "transactions_per_second": round(sum(entry["transactions"] for entry in found) / longest, 1),
            "ran_out_of_rows": any(entry["ran_out"] for entry in found),
            "results_table": {"inserted": after["inserted"] - before["inserted"],
                              "updated": after["updated"] - before["updated"],
                              "dead_tuples": after["dead"], "live_tuples": after["live"]}}


def measure_ceiling(url: str = DATABASE_URL, quick: bool = False, writers=WRITERS, batches=BATCHES,
                    rounds: int | None = None, before: str | None = None, before_root: Path | None = None
                    ) -> dict:
    """Each scenario (writers x batch x one job or a job each), `rounds` times interleaved; its best.

    before: a commit whose Ledger.write runs each scenario just before this checkout's (in a
    worktree of it made for the run), or before_root: a checkout of it, only read; either with a
    database of its own (url + "_before"): figures["before"].
    """
    seconds = QUICK_SECONDS if quick else SECONDS
    rounds = rounds or (1 if quick else ROUNDS)
    runs, old_runs = [], []
    with contextlib.ExitStack() as stack:
        old_root = stack.enter_context(worktree(git_commit(before))) if before else before_root
        old_commit = _head(old_root) if old_root is not None else None
        for number in range(rounds):
            for batch in batches:
                budget = (QUICK_ROWS if quick else ROWS).get(batch, 2_000 * batch)
                for count in writers:
                    if old_root is not None:
                        old_runs += [{"round": number, **run}
                                     for run in _other_side(old_root, f"{url}_before", count, batch, quick)]
                    for one_job in (True, False):
                        run = scenario(url, count, batch, one_job, seconds, budget)
                        runs.append({"round": number, **run})
                        _say(f"round {number + 1}", run)
    fresh_database(url)
    figures = {**summary(runs, writers, batches), "runs": runs, "seconds_per_run": seconds, "rounds": rounds,
               "database": database_facts(url)}
    if old_runs:
        figures["before"] = {"commit": old_commit, **summary(old_runs, writers, batches),
                             "runs": old_runs}
    return figures


def _say(label: str, run: dict) -> None:
    print(f"ledger, {label}: {run['writers']} writers, batch {run['batch']}, {run['jobs']}: "
          f"{run['rows_per_second']} rows/s, results table {run.get('results_table')}", flush=True)


def summary(runs: list[dict], writers, batches) -> dict:
    """Each scenario's best round, and the best of each (batch, one job or a job each)."""
    scenarios = []
    for batch in batches:
        for count in writers:
            for jobs in ("one job", "a job per writer"):
                mine = [run for run in runs
                        if (run["batch"], run["writers"], run["jobs"]) == (batch, count, jobs)]
                best_run = max(mine, key=lambda run: run["rows_per_second"])
                scenarios.append({"writers": count, "batch": batch, "jobs": jobs,
                                  "rows_per_second": best_run["rows_per_second"],
                                  "every_round": [run["rows_per_second"] for run in mine],
                                  "results_table": best_run.get("results_table")})

    def best(batch: int, jobs: str) -> float | None:
        rates = [entry["rows_per_second"] for entry in scenarios
                 if (entry["batch"], entry["jobs"]) == (batch, jobs)]
        return max(rates) if rates else None

    return {"scenarios": scenarios,
            "best_rows_per_second": {f"batch_{batch}_{'one_job' if jobs == 'one job' else 'job_per_writer'}":
                                     best(batch, jobs) for batch in batches
                                     for jobs in ("one job", "a job per writer")}}


def _head(root: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True,
                          text=True).stdout.strip()


def _other_side(root: Path, url: str, writers: int, batch: int, quick: bool) -> list[dict]:
    # One round of (writers, batch), both ways: this file run as a script with the checkout at root
    # first on the path, so that its posterq (and bench, tests) is the one imported. It writes no
    # bytecode there: the checkout is only read.
    command = [sys.executable, str(Path(__file__).resolve()), "--database-url", url, "--rounds", "1",
               "--writers", str(writers), "--batches", str(batch), "--runs-only", *["--quick"][:quick]]
    done = subprocess.run(command, cwd=root, check=True, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"})
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    for run in runs:
        _say("before", run)
    return runs


def table(figures: dict) -> str:
    """rows/s of each scenario (and of the commit before, when measured), as a Markdown table."""
    before = {(entry["batch"], entry["writers"], entry["jobs"]): entry
              for entry in figures.get("before", {}).get("scenarios", [])}
    lines = ["| batch | writers | jobs | rows/s (every round) | results inserted / updated / dead |"
             + (" before: rows/s (every round) | before: inserted / updated / dead |" if before else ""),
             "|---|---|---|---|---|" + ("---|---|" if before else "")]
    for entry in figures["scenarios"]:
        line = f"| {entry['batch']} | {entry['writers']} | {entry['jobs']} | {_cells(entry)} |"
        old = before.get((entry["batch"], entry["writers"], entry["jobs"]))
        lines.append(line + (f" {_cells(old)} |" if old else ""))
    return "\n".join(lines) + "\n"


def _cells(entry: dict) -> str:
    # A scenario's best rate, every round's, and the results table's counts in its best round.
    counts = entry.get("results_table") or {}
    rounds = ", ".join(f"{rate:,.0f}" for rate in entry["every_round"])
    return (f"{entry['rows_per_second']:,.0f} ({rounds}) | "
            f"{counts.get('inserted')} / {counts.get('updated')} / {counts.get('dead_tuples')}")


def main() -> int:
    """Measure alone; print the figures as JSON and save them (and a table) under --out."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DATABASE_URL, help=f"the bench's database ({DATABASE_URL})")
    parser.add_argument("--writers", type=int, nargs="+", default=list(WRITERS), help="writer processes")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES), help="rows per call")
    parser.add_argument("--rounds", type=int, default=None, help=f"runs of each scenario ({ROUNDS}; quick 1)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS} s a scenario, fewer rows")
    before = parser.add_mutually_exclusive_group()
    before.add_argument("--before", default=None,
                        help="a commit whose Ledger.write runs each scenario beside this one's (a worktree)")
    before.add_argument("--before-root", type=Path, default=None,
                        help="a checkout (only read) whose Ledger.write runs each scenario beside this one's")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where the figures go ({RESULTS})")
    parser.add_argument("--runs-only", action="store_true", help=argparse.SUPPRESS)  # _other_side's
    args = parser.parse_args()
    if args.runs_only:  # the other side of a run: its runs as JSON, on the last line
        runs = measure_ceiling(args.database_url, args.quick, args.writers, args.batches, 1)["runs"]
        print(json.dumps(runs))
        return 0
    made = provenance()
    figures = measure_ceiling(args.database_url, args.quick, args.writers, args.batches, args.rounds,
                              args.before, args.before_root)
    made["machine"].update(loadavg_after=[round(v, 2) for v in os.getloadavg()])
    command = " ".join(["python -m bench.ledger_ceiling", *sys.argv[1:]])
    result = {"benchmark": "ledger_ceiling", "command": command, "provenance": made, **figures}
    print(json.dumps(result, indent=2))
    shown = table(figures)
    print(shown)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"ledger_ceiling-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    machine = made["machine"]
    path.with_suffix(".md").write_text(
        f"`{command}`\n\nCPU: {describe(machine['cpu'])}; "
        f"load average before {machine['loadavg_before']}, after {machine['loadavg_after']}\n\n{shown}")
    print(f"wrote {path} and {path.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
