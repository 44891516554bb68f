"""A folder labelled again through the service: results reused by content (posterq.jobs.reuse).

    .venv/bin/python -m bench.reuse ../shared/datasets/movie-posters/Images [--posters 500] [--new 60] \
        [--warm 20] [--database-url URL] [--out DIR]

It needs Redis (POSTERQ_REDIS_URL) and PostgreSQL: the benchmark's own database (--database-url,
default postgresql://postgres@127.0.0.1:5432/posterq_bench_reuse) is created when missing and
emptied first, so that the first run's posters are new to it. The first --posters files of DATA (sorted by
name) are hard-linked into a folder under a temporary data root, the next --new into another,
and the next --warm into a third. One `posterq api` and one `posterq worker` (default settings: a
process per core) with the shipped model, reuse on (the service's default), under a private key
prefix; a warm-up job of the --warm folder loads the model in every worker process. Then, one
after another, each a POST /jobs {"directory": ...} timed by the server (finished_at -
created_at) and by the client (from the POST until the job is final, polled every 50 ms):

1. first: the folder, new to the service: every poster classified;
2. again: the same folder: every poster reused, none classified (rows and genres compared with 1);
3. grown: the folder with the --new posters added: the new ones classified, the rest reused.

It prints the three side by side with the ratios to the first run (the targets: again <= 0.1,
grown <= 0.3), the CPU model and the load average, and writes bench/results/reuse-<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.ledger_ceiling import fresh_database
from bench.service import RESULTS, Service, bench_settings, client, pick_posters, provenance, save_report
from posterq.config import DEFAULT_MODEL_DIR
from posterq.cpu import describe
from posterq.jobs.keys import JobStatus
from tests.harness import all_results

#: The benchmark's own database (never the service's or the tests'): emptied at the start.
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/posterq_bench_reuse"

POLL = 0.05
JOB_TIMEOUT = 3600
TARGETS = {"again": 0.1, "grown": 0.3}


def link_into(folder: Path, files: list[Path]) -> None:
    """Hard-link (else copy) files into folder, which is made."""
    folder.mkdir(parents=True)
    for path in files:
        try:
            os.link(path, folder / path.name)
        except OSError:
            shutil.copy2(path, folder / path.name)


def timed_job(service: Service, folder: Path) -> tuple[dict, list[dict]]:
    """POST a folder job, wait for it (short polls); its figures and its result rows."""
    with client(service.url) as http:
        sent = time.monotonic()
        job = http.submit_directory(folder)
        deadline = sent + JOB_TIMEOUT
        while not JobStatus(job["status"]).final:
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job['id']} is not final after {JOB_TIMEOUT} s")
            time.sleep(POLL)
            job = http.job(job["id"])
        client_s = time.monotonic() - sent
    rows = all_results(service.url, job["id"], job["total"])
    reused = sum(1 for row in rows if row.get("reused"))
    return {"job": job["id"], "status": job["status"], "posters": job["total"], "ok": job["done"],
            "errors": job["failed"], "reused": reused, "classified": len(rows) - reused,
            "server_s": round(job["finished_at"] - job["created_at"], 3),
            "client_s": round(client_s, 3)}, rows


def measure(args) -> dict:
    """The warm-up and the three runs; their figures, ratios and where they came from."""
    produced = provenance()
    files = pick_posters(args.data, args.posters + args.new + args.warm)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="posterq-reuse-")))
        root = tmp / "data"
        folder, extra, warm = root / "catalogue", root / "extra", root / "warm"
        link_into(folder, files[:args.posters])
        link_into(extra, files[args.posters:args.posters + args.new])
        link_into(warm, files[args.posters + args.new:])
        fresh_database(args.database_url)
        settings = bench_settings("reuse", model=str(DEFAULT_MODEL_DIR), data_roots=str(root.resolve()),
                                  reuse_results=True, database_url=args.database_url)
        (tmp / "logs").mkdir()
        service = stack.enter_context(Service(settings, tmp / "logs"))
        service.start_worker(name="reuse")
        timed_job(service, warm)
        runs, rows = {}, {}
        runs["first"], rows["first"] = timed_job(service, folder)
        if runs["first"]["reused"]:
            raise SystemExit("the database knows some of these posters already: give the benchmark a "
                             "database of its own that has not seen them (POSTERQ_DATABASE_URL)")
        runs["again"], rows["again"] = timed_job(service, folder)
        for path in sorted(extra.iterdir()):
            os.replace(path, folder / path.name)
        runs["grown"], rows["grown"] = timed_job(service, folder)
        print(f"done: {json.dumps(runs)}", file=sys.stderr, flush=True)
    genres = {name: {row["name"]: row["genres"] for row in found} for name, found in rows.items()}
    first = runs["first"]["server_s"]
    for name in ("again", "grown"):
        runs[name]["ratio_to_first"] = round(runs[name]["server_s"] / first, 4)
        runs[name]["target"] = TARGETS[name]
        runs[name]["met"] = runs[name]["ratio_to_first"] <= TARGETS[name]
    return {"posters": args.posters, "new": args.new, "runs": runs,
            "same_genres_again": genres["again"] == genres["first"],
            "same_genres_grown": all(genres["grown"][name] == found
                                     for name, found in genres["first"].items()),
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
            "provenance": produced}


def table(figures: dict) -> str:
    """The three runs side by side, as a Markdown table."""
    runs = figures["runs"]
    lines = [f"{figures['posters']}-poster folder job, then again, then with {figures['new']} new posters; "
             f"one worker, default settings, shipped model; CPU: "
             f"{describe(figures['provenance']['machine']['cpu'])}; load average before "
             f"{figures['provenance']['machine']['loadavg_before']}, "
             f"after {figures['loadavg_after']}", "",
             "| run | posters | classified | reused | server s | client s | x first (target) |",
             "|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        ratio = f"{run['ratio_to_first']} (<= {run['target']})" if "ratio_to_first" in run else "1"
        lines.append(f"| {name} | {run['posters']} | {run['classified']} | {run['reused']} "
                     f"| {run['server_s']} | {run['client_s']} | {ratio} |")
    lines += ["", f"same genres as the first run: again {figures['same_genres_again']}, "
                  f"grown {figures['same_genres_grown']}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Measure; print the table; write the JSON and the table under --out."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path,
                        help="a folder of posters (e.g. ../shared/datasets/movie-posters/Images)")
    parser.add_argument("--posters", type=int, default=500, help="posters in the folder (default 500)")
    parser.add_argument("--new", type=int, default=60, help="posters added for the third run (default 60)")
    parser.add_argument("--warm", type=int, default=20, help="posters of the warm-up job (default 20)")
    parser.add_argument("--database-url", default=DATABASE_URL,
                        help=f"the benchmark's own database, emptied first ({DATABASE_URL})")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    figures = measure(args)
    save_report("reuse", figures, table(figures), args.out)
    ok = figures["same_genres_again"] and figures["same_genres_grown"]
    return 0 if ok and all(run.get("met", True) for run in figures["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
