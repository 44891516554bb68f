"""A folder of 200,000 files as ONE directory job, end to end, and how far one Redis and one PostgreSQL go.

    .venv/bin/python -m bench.big_job ../shared/datasets/movie-posters/Images [--files 200000] [--quick] \
        [--small-files N] [--shipped-posters 1000] [--writers 1 4 8] [--redis-url URL] \
        [--database-url URL] [--out DIR]

Standalone, not in bench.all: the full run links 221,000 files and classifies about 250,000
posters, 31 minutes on the 2-core development machine (--quick: 5,000 files, about four
minutes). `measure(posters, quick)` has bench.all's shape all the same. A SIGTERM stops it
cleanly, and each part's figures are written to bench/results/big_job-<time>.partial.json as
soon as the part ends, so that a run stopped late still leaves what it measured.

The folders (bench.big_folder): the first 1,000 files of DATA (sorted) are copied into a temporary
folder and hard-linked, cycling through them, into a folder of --files files (the big one), one of
--small-files (default files / 10) and one of --shipped-posters, in subfolders of 1,000 (ext4 takes
at most 65,000 links per file: more copies are made where fewer would need more than 60,000 each).
File n of every folder links the same poster, so the shipped model's small job holds exactly the
posters of its big job's files 200 to 1,199.

The service: a redis-server of its own (used_memory is server-wide: on a shared Redis another
client's keys would count; --redis-url uses a given one under a private prefix instead), a
PostgreSQL database of its own (--database-url, default posterq_bench on 127.0.0.1, created if
missing and emptied first), `posterq api` (gunicorn, default settings) and one `posterq worker`
(default settings: a process per core, batches of 2, a window of 2,000 posters a job), started
through tests/harness.py (bench.service.Service). Every job is POST /jobs {"directory": ...}.

1. The tests' tiny model (tests/samples.py, 48x32 input; built once with TensorFlow in a
   subprocess and cached in runs/cache/), so that classification does not dominate: the small
   folder, then the big one, as one job each. For each: the POST's answer time; when the folder
   was listed (enumerated true); Redis used_memory every 50 ms from one second before the POST
   (the baseline: that second's median) to the job final, with the posters waiting and in
   batches; results written per second (posters / (finished_at - started_at)); SQL checks that
   every file has exactly one row (count, distinct idx, none pending). Then the results table's
   pg_total_relation_size per row, the big job's CSV download (seconds, rows, the RSS of the
   gunicorn master and workers every 20 ms from /proc: peak growth), and the big folder once more
   as a job cancelled at files / 10 done: seconds from the DELETE to the last result written (the
   job row polled every 10 ms; the last result row's finished_at too) and whether listing stopped.
2. The shipped model: a warm-up job, a job of the --shipped-posters folder (Redis not sampled:
   its INFO cpu and commandstats per poster, less the idle service's rate over 5 s before it,
   give the ceiling of one Redis core; bench.redis_cost's recorded figure is quoted beside it),
   then the big folder as one job, measured between 200 and 200 + shipped-posters done, and over
   as many posters once its folder is listed (a listing takes a worker process while it runs),
   then cancelled as in 1, then the small job again (the machine's speed drifts: the ratio is
   against the mean of both).
3. bench.ledger_ceiling, with the services stopped: rows/s of Ledger.write from --writers
   processes, batches of 2 (the service's) and 64, on one job and on a job each, two rounds.

From 2 and 3: how many worker hosts like this one (the big job's posters/s) one PostgreSQL and one
Redis carry. It prints progress, and writes bench/results/big_job-<time>.json (every figure, the
series, settings, models, commit, machine), a Markdown table beside it and a plot.

The capacity model is bench.big_job_capacity; the targets, table and plot, bench.big_job_report.
"""

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.big_folder import (
    PER_FOLDER,
    Bench,
    Folders,
    Sampler,
    Watch,
    download,
    table_size,
    tiny_bundle,
    written,
)
from bench.big_job_capacity import how_far, ratio, recorded_redis_ceiling, redis_cost, timed_snapshot
from bench.big_job_report import markdown, notes, plot, targets
from bench.ledger_ceiling import DATABASE_URL, WRITERS, database_facts, fresh_database, measure_ceiling
from bench.service import RESULTS, Service, bench_settings, provenance
from posterq.bundle import load_bundle
from posterq.config import DEFAULT_MODEL_DIR
from tests.harness import RedisServer

FILES, QUICK_FILES = 200_000, 5_000
SOURCES = 1000
SHIPPED_POSTERS, QUICK_SHIPPED_POSTERS = 1000, 200
#: Where the big job's steady-state window starts: past the first batches and the model loads.
STEADY_FROM = 200
#: Seconds of the idle service whose Redis cost is taken off a job's.
IDLE = 5.0
#: Seconds between samples of the machine's load.
LOAD_INTERVAL = 10.0


def _brief(figures: dict) -> str:
    # A part's figures without the series, for the console.
    return json.dumps({key: value for key, value in figures.items() if key != "series"})


def tiny_part(bench: Bench, folders: dict[str, Path], files: int, small: int) -> dict:
    """Part 1 (tiny model): the small and big jobs, the table's size, the CSV download, a cancelled job."""
    found = {}
    for label, count in (("small", small), ("big", files)):
        watch = Watch(bench, folders[label], count, f"tiny {label}")
        row = watch.final()
        watch.stop()
        found[f"{label}_job"] = {**watch.finished(row), "series": watch.series()}
        print(f"tiny model, {count} files: {_brief(found[f'{label}_job'])}", flush=True)
    found["results_table"] = table_size(bench.sql)
    found["download"] = download(bench, found["big_job"]["job"], files)
    print(f"results table: {found['results_table']}\ndownload: {found['download']}", flush=True)
    watch = Watch(bench, folders["big"], files, "tiny cancelled")
    watch.wait(lambda row: written(row) >= files // 10, f"{files // 10} done")
    found["cancel"] = watch.cancel()
    watch.stop()
    print(f"cancel: {found['cancel']}", flush=True)
    return found


def shipped_part(bench: Bench, folders: dict[str, Path], files: int, posters: int) -> dict:
    """Part 2 (shipped model): a job of `posters` against the big job's steady state; then cancel it."""
    warm = Watch(bench, folders["warm-up"], 8, "shipped warm-up")  # every pool process loads the model
    warm.final()
    warm.stop()
    idle = timed_snapshot(bench.redis)
    time.sleep(IDLE)  # what the idle service costs Redis, taken off the job's cost below
    before = timed_snapshot(bench.redis)
    small = Watch(bench, folders["shipped"], posters, "shipped small", sample_redis=False)
    row = small.final()
    small.stop()
    redis_cpu = redis_cost(idle, before, timed_snapshot(bench.redis), posters)
    small_figures = small_job(small, row, posters)
    big = Watch(bench, folders["big"], files, "shipped big")
    start, stop = STEADY_FROM, STEADY_FROM + posters
    big.wait(lambda row: written(row) >= stop, f"{stop} done")
    listed = big.wait(lambda row: row["enumerated"], "listed")
    later = written(listed) + posters // 10  # a little past the listing's last chunk
    big.wait(lambda row: written(row) >= later + posters, "a window after the listing")
    big_figures = {**big.post_figures(), "window": [start, stop], "posters_per_second": big.rate(start, stop),
                   "window_after_listing": [later, later + posters],
                   "posters_per_second_after_listing": big.rate(later, later + posters)}
    big_figures["cancel"] = big.cancel()
    big.stop()
    big_figures["series"] = big.series()
    # The small job again: the machine's speed may drift over the minutes of the big job.
    again = Watch(bench, folders["shipped"], posters, "shipped small again", sample_redis=False)
    again_figures = small_job(again, again.final(), posters)
    again.stop()
    rates = [small_figures["steady_posters_per_second"], again_figures["steady_posters_per_second"]]
    steady = round(sum(rates) / 2, 1) if all(rates) else None
    found = {"small_job": small_figures, "small_job_again": again_figures, "small_steady_mean": steady,
             "big_job": big_figures, "redis_cost_small_job": redis_cpu,
             "big_over_small": ratio(big_figures["posters_per_second"], steady),
             "big_after_listing_over_small": ratio(big_figures["posters_per_second_after_listing"], steady)}
    print(f"shipped model: {_brief(small_figures)}\n{_brief(big_figures)}\nratio {found['big_over_small']}, "
          f"after listing {found['big_after_listing_over_small']}; Redis {redis_cpu}", flush=True)
    return found


def small_job(watch: Watch, row: dict, posters: int) -> dict:
    """A finished small job's figures: posters/s over the whole job, and between 10 % and 90 % of it."""
    return {**watch.finished(row),
            "posters_per_second": round(written(row) / (row["finished_at"] - row["created_at"]), 1),
            "steady_posters_per_second": watch.rate(posters // 10, posters - posters // 10),
            "series": watch.series()}


@contextlib.contextmanager
def redis_for(url: str | None, folder: Path):
    """The given Redis URL, or a redis-server of the bench's own (noeviction, no persistence)."""
    if url:
        yield url
        return
    with RedisServer(folder, "--maxmemory-policy", "noeviction") as server:
        yield server.url


def measure(posters: list[Path], quick: bool, files: int | None = None, small_files: int | None = None,
            shipped_posters: int | None = None, writers=WRITERS, redis_url: str | None = None,
            database_url: str = DATABASE_URL, checkpoint: Path | None = None) -> dict:
    """Parts 1 to 3 (see the module's docstring) on links of these posters; JSON-ready.

    checkpoint: a file that gets each part's figures as soon as it ends, so that a run stopped in
    a later part (half an hour in) still leaves what it measured.
    """
    parts = {}

    def keep(name: str, figures: dict) -> dict:
        parts[name] = figures
        if checkpoint is not None:
            checkpoint.write_text(json.dumps({"provenance": produced, "partial": parts}, indent=2) + "\n")
        return figures

    files = files or (QUICK_FILES if quick else FILES)
    small = small_files or files // 10
    shipped_posters = shipped_posters or (QUICK_SHIPPED_POSTERS if quick else SHIPPED_POSTERS)
    if files < STEADY_FROM + 3 * shipped_posters:
        raise SystemExit(f"the big folder needs at least {STEADY_FROM + 3 * shipped_posters} files")
    produced, shipped = provenance(), load_bundle(None)
    load = Sampler(machine_load, LOAD_INTERVAL)
    load.start()
    with tempfile.TemporaryDirectory(prefix="posterq-big-job-") as tmp:
        tmp = Path(tmp)
        began = time.monotonic()
        folders = Folders(tmp / "folders", posters[:SOURCES], files + small + shipped_posters + 8)
        made = {"big": folders.make("big", files), "small": folders.make("small", small),
                "shipped": folders.make("shipped", shipped_posters), "warm-up": folders.make("warm-up", 8)}
        linking = round(time.monotonic() - began, 1)
        tiny = load_bundle(tiny_bundle(tmp / "bundles"))
        fresh_database(database_url)
        (tmp / "logs").mkdir()
        with redis_for(redis_url, tmp / "redis") as url:
            settings = bench_settings("big-job", redis_url=url, database_url=database_url,
                                      data_roots=[folders.root], model=str(tiny.path))
            with Service(settings, tmp / "logs") as service:
                bench = Bench(service, database_url)
                worker = service.start_worker()
                part1 = keep("tiny", tiny_part(bench, made, files, small))
                service.stop_worker(worker)
                service.start_worker(model=str(DEFAULT_MODEL_DIR))
                part2 = keep("shipped", shipped_part(bench, made, files, shipped_posters))
                bench.sql.close()
    part3 = keep("ledger", measure_ceiling(database_url, quick, writers))
    produced["machine"]["load_during"] = load_summary(load.stop())
    figures = {"tiny": part1, "shipped": part2, "ledger": part3,
               "how_far": how_far(part2, part3, recorded_redis_ceiling())}
    return {"name": "big_job", "figures": figures, "targets": targets(figures),
            "settings": {"files": files, "small_files": small, "shipped_posters": shipped_posters,
                         "sources": len(folders.sources), "per_folder": PER_FOLDER,
                         "steady_from": STEADY_FROM,
                         "linking_s": linking, "job_window": settings.job_window,
                         "batch_size": settings.batch_size, "api_and_worker": "defaults",
                         "redis": f"given: {url.rsplit('@', 1)[-1]}" if redis_url else "its own redis-server",
                         "database": database_facts(database_url),
                         "models": {"tiny": tiny.identity, "shipped": {**shipped.identity,
                                                                       "sha256": shipped.meta["sha256"]}}},
            "provenance": produced, "notes": notes(quick)}


def machine_load() -> tuple[float, float]:
    """The 1-minute load average and the CPU pressure (share of the last 10 s some task waited for a CPU)."""
    some = Path("/proc/pressure/cpu").read_text().split("\n")[0]  # "some avg10=1.23 avg60=..."
    return os.getloadavg()[0], float(some.split()[1].split("=")[1])


def load_summary(series: list) -> dict:
    """Min, median and max of the load average and CPU pressure sampled through the run."""
    found = {}
    for n, name in enumerate(("loadavg_1m", "cpu_pressure_some_avg10_percent")):
        values = sorted(value[n] for _, value in series)
        if values:
            found[name] = {"min": round(values[0], 2), "median": round(values[len(values) // 2], 2),
                           "max": round(values[-1], 2)}
    return {**found, "samples": len(series), "interval_s": LOAD_INTERVAL}


def main() -> int:
    """Measure; print and save the figures, the table and the plot."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of posters (read only)")
    parser.add_argument("--files", type=int, default=None,
                        help=f"files in the big folder (default {FILES}, {QUICK_FILES} with --quick)")
    parser.add_argument("--small-files", type=int, default=None, help="files in the small folder (files/10)")
    parser.add_argument("--shipped-posters", type=int, default=None,
                        help=f"the shipped model's small job ({SHIPPED_POSTERS}; --quick "
                             f"{QUICK_SHIPPED_POSTERS})")
    parser.add_argument("--writers", type=int, nargs="+", default=list(WRITERS), help="Ledger.write writers")
    parser.add_argument("--quick", action="store_true", help="a few thousand files, shorter runs")
    parser.add_argument("--redis-url", default=None, help="this Redis (default: a redis-server of its own)")
    parser.add_argument("--database-url", default=DATABASE_URL, help=f"the bench's database ({DATABASE_URL})")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    posters = sorted(p for p in args.data.iterdir() if p.is_file() and not p.name.startswith("."))[:SOURCES]
    if not posters:
        raise SystemExit(f"{args.data} holds no files")
    # A SIGTERM unwinds like Ctrl-C: the services stop and the temporary folders go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out / f"big_job{'-quick' if args.quick else ''}-{stamp}.json"
    partial = path.with_suffix(".partial.json")
    result = measure(posters, args.quick, args.files, args.small_files, args.shipped_posters, args.writers,
                     args.redis_url, args.database_url, partial)
    report = {"benchmark": "big_job", "command": " ".join(["python -m bench.big_job", *sys.argv[1:]]),
              "seconds": round(time.monotonic() - began, 1), **result}
    path.write_text(json.dumps(report, indent=2) + "\n")
    partial.unlink(missing_ok=True)
    table = markdown(report)
    path.with_suffix(".md").write_text(table)
    plot(report, path.with_suffix(".png"))
    print("\n" + table)
    print(f"wrote {path}, {path.with_suffix('.md').name} and {path.with_suffix('.png').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
