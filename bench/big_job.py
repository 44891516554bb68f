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
through posterq.testing (bench.service.Service). Every job is POST /jobs {"directory": ...}.

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

import pandas as pd

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
from bench.ledger_ceiling import DATABASE_URL, WRITERS, database_facts, fresh_database, measure_ceiling
from bench.redis_cost import snapshot
from bench.report import markdown_table, targets_table
from bench.service import RESULTS, Service, bench_settings, provenance
from posterq.bundle import load_bundle
from posterq.config import DEFAULT_MODEL_DIR
from posterq.testing import RedisServer

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


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, rounded, or None without both."""
    return round(a / b, 3) if a and b else None


def timed_snapshot(client) -> dict:
    """bench.redis_cost's snapshot of Redis's counters, with when it was taken."""
    return {**snapshot(client), "time": time.monotonic()}


def _spent(before: dict, after: dict) -> tuple[int, float, float]:
    # Commands, commandstats seconds and INFO cpu seconds between two bench.redis_cost snapshots.
    calls = usec = 0
    for name, (count, spent) in after["commands"].items():
        if name != "info":  # this benchmark's own snapshots
            calls += count - before["commands"].get(name, (0, 0))[0]
            usec += spent - before["commands"].get(name, (0, 0))[1]
    return calls, usec / 1e6, after["cpu_s"] - before["cpu_s"]


def redis_cost(idle: dict, before: dict, after: dict, posters: int) -> dict:
    """Redis CPU and commands per poster of a job (after - before); one Redis core's ceiling.

    The idle service's own rate (idle -> before: heartbeats, Celery's polls) gives a second figure,
    the job's cost above it.
    """
    seconds = after["time"] - before["time"]
    calls, commands_s, cpu_s = _spent(before, after)
    idle_calls, idle_commands_s, idle_cpu_s = (value * seconds / (before["time"] - idle["time"])
                                               for value in _spent(idle, before))
    above_idle, commands_above = (cpu_s - idle_cpu_s) / posters, (commands_s - idle_commands_s) / posters
    return {"job_seconds": round(seconds, 2), "commands_per_poster": round(calls / posters, 1),
            "info_cpu_usec_per_poster": round(1e6 * cpu_s / posters, 1),
            "commandstats_usec_per_poster": round(1e6 * commands_s / posters, 1),
            "above_idle": {"commands_per_poster": round((calls - idle_calls) / posters, 1),
                           "info_cpu_usec_per_poster": round(1e6 * above_idle, 1),
                           "commandstats_usec_per_poster": round(1e6 * commands_above, 1)},
            # The conservative figure, as bench.redis_cost's: INFO cpu, the idle service's share included.
            "redis_ceiling_posters_per_second": round(posters / cpu_s) if cpu_s > 0 else None,
            "redis_ceiling_above_idle": round(1 / above_idle) if above_idle > 0 else None}


def recorded_redis_ceiling() -> dict | None:
    """bench.redis_cost's directory-job ceiling from the latest bench.all result that has one."""
    for path in sorted(RESULTS.glob("all-*.json"), reverse=True):
        report = json.loads(path.read_text())
        modes = report.get("results", {}).get("redis_cost", {}).get("figures", {}).get("modes", {})
        if "directory_job" in modes:
            mode = modes["directory_job"]
            ceiling = mode["redis_ceiling_posters_per_second"]
            return {"file": path.name, "commit": report["git"]["commit"][:7],
                    "info_cpu_usec_per_poster": mode["redis_cpu_usec_per_poster"]["info_cpu_usec"],
                    "redis_ceiling_posters_per_second": ceiling.get("info_cpu_usec")
                    or ceiling.get("commandstats_usec")}
    return None


def how_far(shipped: dict, ledger: dict, recorded: dict | None) -> dict:
    """Posters/s one PostgreSQL and one Redis carry, and so how many worker hosts like this one."""
    host = shipped["big_job"]["posters_per_second_after_listing"] or shipped["big_job"]["posters_per_second"]
    best = ledger["best_rows_per_second"]
    # The service writes batches of 2: many jobs spread over rows of their own, while every batch
    # of one big job locks that job's row.
    many, one = best.get("batch_2_job_per_writer"), best.get("batch_2_one_job")
    measured = shipped["redis_cost_small_job"]["redis_ceiling_posters_per_second"]
    above_idle = shipped["redis_cost_small_job"]["redis_ceiling_above_idle"]

    def hosts(ceiling):
        return round(ceiling / host, 1) if ceiling and host else None

    return {"host_posters_per_second": host,
            "postgres_posters_per_second_many_jobs": many, "postgres_hosts_many_jobs": hosts(many),
            "postgres_posters_per_second_one_job": one, "postgres_hosts_one_job": hosts(one),
            "redis_posters_per_second": measured, "redis_hosts": hosts(measured),
            "redis_posters_per_second_above_idle": above_idle, "redis_hosts_above_idle": hosts(above_idle),
            "redis_recorded": recorded,
            "redis_hosts_recorded": hosts(recorded["redis_ceiling_posters_per_second"]) if recorded else None}


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


def targets(figures: dict) -> list[dict]:
    """The issue's targets, each with its measured figure."""
    tiny, shipped = figures["tiny"], figures["shipped"]
    big, little = tiny["big_job"], tiny["small_job"]
    files, small = big["files"], little["files"]
    found = [{"target": f"POST of a {files}-file folder answers in under 1 s", "limit": 1.0,
              "measured": big["post_answer_s"], "met": big["post_answer_s"] < 1.0}]
    growth, bound = big["redis"]["growth_mb"], round(1.25 * little["redis"]["growth_mb"] + 1, 2)
    found += [{"target": f"Redis growth, {files}-file job: at most 1.25 x the {small}-file job's + 1 MB",
               "limit": bound, "measured": growth, "met": growth <= bound},
              {"target": f"Redis growth, {files}-file job: under 32 MB (the test's bound)", "limit": 32,
               "measured": growth, "met": growth < 32}]
    once = big["check"]["one_row_per_file"] and little["check"]["one_row_per_file"]
    found.append({"target": "every file has exactly one row, none pending (SQL)", "limit": True,
                  "measured": once, "met": once})
    grown = tiny["download"]["api_rss_peak_growth_mb"]
    found.append({"target": f"CSV download of {files} rows: API RSS growth under 64 MB (the test's bound)",
                  "limit": 64, "measured": grown, "met": grown < 64 and tiny["download"]["all_rows"]})
    for label, entry in (("tiny model", tiny["cancel"]), ("shipped model", shipped["big_job"]["cancel"])):
        found.append({"target": f"cancel ({label}): no result written later than 1 s after the DELETE",
                      "limit": 1.0, "measured": entry["results_stopped_after_s"],
                      "met": entry["results_stopped_after_s"] <= 1.0})
    share = shipped["big_over_small"]
    found.append({"target": "shipped model: the big job's posters/s at least 0.95 x a small job's (steady)",
                  "limit": 0.95, "measured": share, "met": share is not None and share >= 0.95})
    return found


def notes(quick: bool) -> list[str]:
    """How the figures were taken."""
    found = [
        "Redis growth: peak used_memory from the POST to the job final, less the median of the second before "
        "the POST; bytes per in-flight poster divide it by min(job_window, files) + the most posters seen in "
        "claimed batches, and by the most posters seen waiting and in batches at once (more than the window "
        "where top-ups raced); retained: the last sample (job final) less the baseline.",
        "rows/s: the job's posters / (finished_at - started_at), started_at being its first result.",
        "Posters/s of a big job: posters done between two counts / seconds between them (polls every 0.1 s, "
        "interpolated); a small job's steady figure is the same between 10 % and 90 % of it, its whole "
        "figure posters / (finished_at - created_at). The small job runs before and after the big one; the "
        "ratio is against the mean of their steady figures.",
        "Cancel: the job row polled every 10 ms from before the DELETE; results_stopped_after_s runs from "
        "sending the DELETE to the first poll that saw the final count (0 when none moved after it).",
        "Redis per poster (shipped small job): INFO cpu and commandstats diffed around it, no samples taken "
        "meanwhile; the idle worker's heartbeats and polls count too.",
        "Every process shares the machine's cores with PostgreSQL, Redis and this script, and other work "
        "may have run meanwhile: load_during gives the load average and CPU pressure through the run.",
    ]
    if quick:
        found.append("quick mode: a few thousand files; figures are rough")
    return found


def markdown(report: dict) -> str:
    """The headline figures and the targets as Markdown tables."""
    figures = report["figures"]
    tiny, shipped, far = figures["tiny"], figures["shipped"], figures["how_far"]
    big, little, table, load = tiny["big_job"], tiny["small_job"], tiny["results_table"], tiny["download"]
    small_ship, again, big_ship = shipped["small_job"], shipped["small_job_again"], shipped["big_job"]
    rows = [
        (f"POST of the {big['files']}-file folder / of the {little['files']}-file one",
         f"{big['post_answer_s']} / {little['post_answer_s']} s"),
        ("folder listed (enumerated true), s after the POST", f"{big['enumerated_after_s']} / "
                                                               f"{little['enumerated_after_s']} s"),
        ("Redis used_memory growth (peak), big / small job",
         f"{big['redis']['growth_mb']} / {little['redis']['growth_mb']} MB"),
        ("Redis bytes per in-flight poster, big job: growth / (window + in batches) / (the most seen)",
         f"{big['redis']['bytes_per_in_flight_poster']} B / "
         f"{big['redis'].get('bytes_per_poster_most_in_flight')} B "
         f"({big['redis'].get('most_in_flight')} posters)"),
        ("results written (tiny model), big / small job",
         f"{big['rows_per_second']} / {little['rows_per_second']} rows/s"),
        ("results table on disk per row", f"{table['bytes_per_row']} B ({table['rows']} rows)"),
        ("one row per file (SQL)",
         str(big["check"]["one_row_per_file"] and little["check"]["one_row_per_file"])),
        (f"CSV download of {load['rows']} rows",
         f"{load['seconds']} s, API RSS +{load['api_rss_peak_growth_mb']} MB"),
        ("cancel, tiny / shipped model: results stop after",
         f"{tiny['cancel']['results_stopped_after_s']} / {big_ship['cancel']['results_stopped_after_s']} s"),
        (f"shipped model, a {small_ship['files']}-poster job before / after the big one: whole (steady)",
         f"{small_ship['posters_per_second']} ({small_ship['steady_posters_per_second']}) / "
         f"{again['posters_per_second']} ({again['steady_posters_per_second']}) posters/s"),
        (f"shipped model, the big job from {big_ship['window'][0]} to {big_ship['window'][1]} done / "
         "after its listing",
         f"{big_ship['posters_per_second']} / {big_ship['posters_per_second_after_listing']} posters/s "
         f"({shipped['big_over_small']} / {shipped['big_after_listing_over_small']} x the small jobs' "
         "mean steady figure)"),
    ]
    rows += [(f"Ledger.write, {entry['writers']} writers, batch {entry['batch']}, {entry['jobs']}",
              f"{entry['rows_per_second']} rows/s (rounds: {', '.join(map(str, entry['every_round']))})")
             for entry in figures["ledger"]["scenarios"]]
    rows += [("one PostgreSQL, batch 2: many jobs / one job",
              f"{far['postgres_posters_per_second_many_jobs']} / "
              f"{far['postgres_posters_per_second_one_job']} "
              f"posters/s = {far['postgres_hosts_many_jobs']} / {far['postgres_hosts_one_job']} hosts of "
              f"{far['host_posters_per_second']} posters/s"),
             ("one Redis core, directory job (measured here): all / above the idle service's cost",
              f"{far['redis_posters_per_second']} / {far['redis_posters_per_second_above_idle']} posters/s = "
              f"{far['redis_hosts']} / {far['redis_hosts_above_idle']} hosts")]
    if far["redis_recorded"]:
        recorded = far["redis_recorded"]
        rows.append((f"one Redis core (bench.redis_cost, {recorded['commit']}, {recorded['file']})",
                     f"{recorded['redis_ceiling_posters_per_second']} posters/s = "
                     f"{far['redis_hosts_recorded']} hosts"))
    made = report["provenance"]
    load = made["machine"].get("load_during", {}).get("loadavg_1m", {})
    head = (f"Run of {made['git']['commit'][:7]}{' (dirty tree)' if made['git']['dirty'] else ''}, "
            f"{report['settings']['files']} files, {made['machine']['cpus']} CPUs, "
            f"{report['seconds']} s in all; load average through the run: median "
            f"{load.get('median')}, max {load.get('max')}.")
    return "\n".join([head, "", *markdown_table(pd.DataFrame(rows, columns=["measured", "figure"])), "",
                      *targets_table(report["targets"])]) + "\n"


def plot(report: dict, path: Path) -> None:
    """The tiny model's jobs (progress, Redis memory), the shipped model's jobs, Ledger.write's rows/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = report["figures"]
    tiny, shipped = figures["tiny"], figures["shipped"]
    fig, (jobs, memory, model, ledger) = plt.subplots(1, 4, figsize=(22, 5))
    for label, colour in (("big_job", "tab:blue"), ("small_job", "tab:orange")):
        series, files = tiny[label]["series"], tiny[label]["files"]
        t, done, total = zip(*series["progress"], strict=True)
        jobs.plot(t, done, color=colour, label=f"{files} files: done")
        jobs.plot(t, total, color=colour, linestyle=":", label=f"{files} files: listed")
        memory.plot(*zip(*series["redis_used_mb"], strict=True), color=colour, label=f"{files} files")
    jobs.set(xlabel="seconds since the POST", ylabel="posters", title="tiny model: one job per folder")
    jobs.legend(fontsize="small")
    memory.set(xlabel="seconds since the POST", ylabel="Redis used_memory, MB", title="Redis through the job")
    memory.set_ylim(bottom=0)
    memory.legend(fontsize="small")
    for label, colour, what in (("big_job", "tab:blue", ""), ("small_job", "tab:orange", ""),
                                ("small_job_again", "tab:red", ", again")):
        t, done, _ = zip(*shipped[label]["series"]["progress"], strict=True)
        model.plot(t, done, color=colour, label=f"{shipped[label]['files']} files{what}")
    model.axhspan(*shipped["big_job"]["window"], color="tab:blue", alpha=0.1, label="the big job's window")
    model.set(xlabel="seconds since the POST", ylabel="posters done", title="shipped model")
    model.legend(fontsize="small")
    runs = figures["ledger"]["scenarios"]
    names = [f"{run['writers']}w b{run['batch']}\n{'1 job' if run['jobs'] == 'one job' else 'job each'}"
             for run in runs]
    bars = ledger.bar(range(len(runs)), [run["rows_per_second"] for run in runs], color="tab:green")
    ledger.bar_label(bars, fmt="%.0f", fontsize=8)
    ledger.set_xticks(range(len(runs)), names, fontsize=7)
    ledger.set(ylabel="rows / s", title="Ledger.write, one PostgreSQL (best round)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


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
