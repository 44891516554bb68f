"""How long a small folder job waits behind a big one: folder listings on their own queue, before and after.

    .venv/bin/python -m bench.listing_wait [BIG] [SMALL] [--delay S] [--workers N] [--processes N]
        [--before REV] [--model PATH] [--data DIR] [--out DIR]

It needs Redis (POSTERQ_REDIS_URL) and a database (POSTERQ_DATABASE_URL, else SQLite) and
generates its own posters: BIG (default 5,000) and SMALL (default 2) synthetic JPEGs, hard links
of a few distinct ones, in two folders under --data (default a temporary folder, removed after).
Each side starts one API and --workers `posterq worker`s (default 2, of --processes 1 process
each) under a private key prefix and queue, with the shipped model (or --model), warms them with
one small folder job, then posts the big folder job, waits --delay s (default 2), posts the small
folder job and times it, polled every POLL s through posterq.client.ServiceClient:

- listed_s: from the small job's POST until its `total` is known (its folder was listed);
- done_s: from its POST until it is final, and the server's own finished_at - created_at;
- big_finished_then: the big job's posters done or failed at that moment (of its total).

The big job is then cancelled. "before" runs the service of commit --before (default fbf723e, the
last whose listings travel on the batch queue, behind the tokens) from a `git worktree` of it,
removed afterwards; "after" runs this checkout; before first, then after, on the same machine,
whose CPU model (/proc/cpuinfo) is recorded. It prints the two side by side and writes
bench/results/listing_wait-<time>.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.service import RESULTS, Service, bench_settings, git_commit, provenance, save_report, worktree
from posterq.client import ServiceClient
from posterq.cpu import describe
from posterq.exceptions import PosterqError
from posterq.jobs.keys import JobStatus
from tests.harness import SOURCE_ROOT

#: The commit before listings had a queue of their own (main when issue 25 item 5 began).
BEFORE_COMMIT = "fbf723e"
BIG, SMALL, DELAY = 5000, 2, 2.0
#: Distinct posters generated; the folders hold hard links of them, each under its own name.
DISTINCT = 64
#: Seconds between two polls of the small job (and the big one's count).
POLL = 0.05
#: Seconds a job may take before the run is called stuck.
JOB_TIMEOUT = 1800


def synthetic_poster(seed: int) -> Image.Image:
    """A 182x268 poster-like image: coloured bands and noise, different for each seed."""
    rng = np.random.default_rng(seed)
    height, width = 268, 182
    rows = np.linspace(0, 1, height)[:, None, None]
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    pixels = (1 - rows) * top + rows * bottom + rng.normal(0, 24, (height, width, 3))
    band = rng.integers(0, height - 40)
    pixels[band:band + 40] = rng.integers(0, 256, 3)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def make_folder(folder: Path, count: int, sources: list[Path]) -> Path:
    """A folder of `count` hard links of the generated posters, poster_00000.jpg and on."""
    folder.mkdir(parents=True)
    for n in range(count):
        os.link(sources[n % len(sources)], folder / f"poster_{n:05d}.jpg")
    return folder


def make_data(data: Path, big: int, small: int) -> dict[str, Path]:
    """The generated posters and the folders of the run: big, small and warm (the warm-up job's)."""
    originals = data / "originals"
    originals.mkdir(parents=True)
    sources = []
    for seed in range(DISTINCT):
        path = originals / f"original_{seed:03d}.jpg"
        synthetic_poster(seed).save(path, "JPEG", quality=90)
        sources.append(path)
    return {"big": make_folder(data / "big", big, sources),
            "small": make_folder(data / "small", small, sources),
            "warm": make_folder(data / "warm", small, sources[::-1])}


def time_small_job(client: ServiceClient, folders: dict[str, Path], delay: float) -> dict:
    """Post the big folder job, then after delay s the small one; follow the small one until final."""
    big = client.submit_directory(folders["big"])
    time.sleep(delay)
    sent = time.monotonic()
    small_id = client.submit_directory(folders["small"])["id"]
    listed_s = None
    deadline = sent + JOB_TIMEOUT
    while True:
        job = client.job(small_id)
        now = time.monotonic()
        if listed_s is None and job["total"]:
            listed_s = now - sent
        if JobStatus(job["status"]).final:
            break
        if now > deadline:
            raise SystemExit(f"the small job {small_id} is not final after {JOB_TIMEOUT} s")
        time.sleep(POLL)
    done_s = now - sent
    ahead = client.job(big["id"])
    try:
        client.cancel(big["id"])
    except PosterqError as exc:
        if exc.code != "job_finished":  # the big job ended first: nothing to cancel
            raise
    client.wait([big["id"]], poll=5, timeout=JOB_TIMEOUT)
    return {"listed_s": round(listed_s, 3), "done_s": round(done_s, 3),
            "server_done_s": round(job["finished_at"] - job["created_at"], 3),
            "status": job["status"], "done": job["done"], "failed": job["failed"], "total": job["total"],
            "big_finished_then": ahead["done"] + ahead["failed"], "big_listed_then": ahead["total"]}


def run_side(name: str, source_root: Path, folders: dict[str, Path], args, log_dir: Path) -> dict:
    """One side: its API and workers from source_root, warmed, then the timed pair of jobs."""
    changes = {"data_roots": str(folders["big"].parent), "heartbeat_interval": 1}
    if args.model:
        changes["model"] = str(args.model)
    log_dir.mkdir(parents=True)
    with Service(bench_settings(f"listing-{name}", **changes), log_dir, source_root) as service:
        for n in range(args.workers):
            service.start_worker(args.processes, name=f"{name}-{n}")
        client = ServiceClient(service.url, timeout=60)
        warm = client.submit_directory(folders["warm"])
        client.wait([warm["id"]], poll=5, timeout=JOB_TIMEOUT)
        figures = time_small_job(client, folders, args.delay)
    print(f"{name}: the {args.small}-file job was done {figures['done_s']} s after its POST",
          file=sys.stderr, flush=True)
    return {"source_root": str(source_root), **figures}


def measure(args) -> dict:
    """Both sides, before then after; the figures and where they came from."""
    produced = provenance()
    before = git_commit(args.before)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="posterq-listing-")))
        data = Path(args.data) if args.data else tmp / "data"
        folders = make_data(data / f"listing-wait-{os.getpid()}", args.big, args.small)
        old = stack.enter_context(worktree(before))
        sides = {"before": run_side("before", old, folders, args, tmp / "before"),
                 "after": run_side("after", SOURCE_ROOT, folders, args, tmp / "after")}
    for side in sides.values():
        side.pop("source_root")
    return {"big_files": args.big, "small_files": args.small, "delay_s": args.delay,
            "workers": args.workers, "processes_per_worker": args.processes,
            "cpu": produced["machine"]["cpu"], "cpus": produced["machine"]["cpus"],
            "before": {"commit": before, **sides["before"]},
            "after": {"commit": produced["git"]["commit"], "dirty": produced["git"]["dirty"],
                      **sides["after"]},
            "provenance": produced}


def table(figures: dict) -> str:
    """The two sides side by side, as a Markdown table."""
    rows = [("small job listed (total known), s after its POST", "listed_s"),
            ("small job done, s after its POST", "done_s"),
            ("small job done, server's finished_at - created_at, s", "server_done_s"),
            ("big job's posters finished by then", "big_finished_then")]
    lines = [f"{figures['small_files']}-file folder job posted {figures['delay_s']} s after a "
             f"{figures['big_files']}-file one; {figures['workers']} workers x "
             f"{figures['processes_per_worker']} process; CPU: {describe(figures['cpu'])}", "",
             f"| | before ({figures['before']['commit'][:7]}) | after ({figures['after']['commit'][:7]}) |",
             "|---|---|---|"]
    lines += [f"| {label} | {figures['before'][key]} | {figures['after'][key]} |" for label, key in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Measure both sides; print them; write the JSON and the table under --out."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("big", type=int, nargs="?", default=BIG,
                        help=f"files in the big folder (default {BIG})")
    parser.add_argument("small", type=int, nargs="?", default=SMALL,
                        help=f"files in the small folder (default {SMALL})")
    parser.add_argument("--delay", type=float, default=DELAY,
                        help=f"s between the two POSTs (default {DELAY})")
    parser.add_argument("--workers", type=int, default=2, help="`posterq worker`s (default 2)")
    parser.add_argument("--processes", type=int, default=1, help="processes of each worker (default 1)")
    parser.add_argument("--before", default=BEFORE_COMMIT,
                        help=f"the commit measured as before (default {BEFORE_COMMIT})")
    parser.add_argument("--model", type=Path, default=None, help="a model bundle (default: the shipped one)")
    parser.add_argument("--data", type=Path, default=None,
                        help="where to generate the posters (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    figures = measure(args)
    command = " ".join(["python -m bench.listing_wait", *sys.argv[1:]])
    save_report("listing_wait", {"benchmark": "listing_wait", "command": command, "figures": figures},
                f"`{command}`\n\n{table(figures)}", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
