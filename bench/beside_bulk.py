"""Small jobs and /analysis/ beside a bulk job, on one worker of concurrency 1 (issue 26 item 4).

    POSTERQ_REDIS_URL=redis://127.0.0.1:6379/1 .venv/bin/python -m bench.beside_bulk \
        ../shared/datasets/movie-posters/Images [--quick] [--rounds 2] [--before REV]

It starts its own API and one worker with concurrency 1 (under a private key prefix and queue,
results not reused) and measures, in one run and in each of --rounds rounds:

1. idle: one client calling POST /analysis/ in a loop for --seconds: p50 and p90;
2. alone: a 20-poster upload job on the idle service, from its created_at to its finished_at
   (the median of --alone runs: the same posters each time, classified again since reuse is off);
3. beside: a bulk upload job (1,500 posters, --quick 600), one /analysis/ loop client from the
   moment the bulk job is stored, and the same 20-poster job (other posters) posted 1 s later:
   /analysis/ p50 and p90 while the small job runs and the small job's time; then, with the
   loop stopped and the small job done, one bulk batch's time: the mean of the worker's
   batch_seconds histogram (/metrics) over --batch-seconds of the bulk job alone, and posters
   per batch from the batch_size histogram over the same span. The bulk job is then cancelled;
4. pair: step 3 again without the /analysis/ client (a fresh bulk job of the same posters): the
   small job shares the worker with the bulk job only, its fair time 2 x alone.
In steps 3 and 4 it counts the bulk posters done while the small job ran (the bulk job's done
count read after the small job is stored and after it is seen done, so a few too many): in turns,
about as many as the small job's 20; more are bulk posters of batches claimed before the small
job's turn came. It also takes the small job's claimed_at - created_at: claimed_at is the claim
time of the batch that took its first poster, which for a poster taken into a running batch (a
top-up when an /analysis/ call waits takes a bulk-lane poster too) is that batch's start, before
the job existed: then the figure is below 0.

Every job's posters are distinct (bulk, small-alone, small-beside and the loop's posters are
different files), so reuse by content could not help even if it were on.

Targets (issue 26 item 4): /analysis/ p50 beside the bulk job <= idle p50 + one bulk batch's
time; the 20-poster job beside it <= 3 x its time alone. Each checked on the medians of the rounds.

With --before REV, a `git worktree` of that commit runs the same rounds first, on the same
machine, and both sides are reported. With --interactive-share S [S ...], this checkout runs one
side per value of POSTERQ_INTERACTIVE_SHARE (the most of the workers /analysis/ calls take).
Writes bench/results/beside_bulk-<time>.json and .md.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.service import (
    RESULTS,
    SOURCE_ROOT,
    Service,
    client,
    git_commit,
    linked_settings,
    pick_posters,
    provenance,
    save_report,
    worktree,
)
from posterq.exceptions import PosterqError

#: Posters in the small job (the issue's).
SMALL = 20
#: Distinct posters the /analysis/ loop cycles through.
LOOP_POSTERS = 32


class Loop:
    """One client calling POST /analysis/ in a loop on its own thread, each call's latency recorded."""

    def __init__(self, url: str, posters: list[bytes]):
        self.url, self.posters = url, posters
        self.calls: list[tuple[float, float, bool]] = []  # (sent, latency s, answered genres)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if not self.posters:  # no client: the loop stands idle
            return
        with client(self.url, timeout=120) as http:
            turn = 0
            while not self._stop.is_set():
                sent, started = time.time(), time.perf_counter()
                try:
                    ok = bool(http.analyse(self.posters[turn % len(self.posters)]).get("result"))
                except PosterqError:
                    ok = False
                self.calls.append((sent, time.perf_counter() - started, ok))
                turn += 1

    def __enter__(self) -> "Loop":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self, start: float = 0.0, end: float = float("inf")) -> dict:
        """p50/p90 (ms) of the calls sent between start and end (wall time), and how many failed."""
        latencies = [1000 * latency for sent, latency, _ in self.calls if start <= sent <= end]
        return {"calls": len(latencies), "failed": sum(not ok for sent, _, ok in self.calls
                                                         if start <= sent <= end),
                "p50_ms": _percentile(latencies, 50), "p90_ms": _percentile(latencies, 90)}


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def histogram_sums(url: str) -> dict[str, float]:
    """The _sum and _count of the batch_seconds and batch_size histograms in /metrics."""
    with client(url, timeout=30) as service:
        text = service.metrics()
    wanted = {f"posterq_batch_{kind}_{part}" for kind in ("seconds", "size") for part in ("sum", "count")}
    values = dict.fromkeys(wanted, 0.0)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            values[name] = float(value)
    return values


def _batches(before: dict[str, float], after: dict[str, float]) -> dict:
    # The batches the worker ran between two readings of /metrics: how many, their mean time and size.
    count = after["posterq_batch_seconds_count"] - before["posterq_batch_seconds_count"]
    seconds = after["posterq_batch_seconds_sum"] - before["posterq_batch_seconds_sum"]
    posters = after["posterq_batch_size_sum"] - before["posterq_batch_size_sum"]
    return {"batches": int(count), "mean_ms": round(1000 * seconds / count, 1) if count else None,
            "posters_per_batch": round(posters / count, 2) if count else None}


def submit(url: str, posters: list[Path]) -> dict:
    """Post the posters as one upload job; return the job as the API answered."""
    with client(url) as http:
        return http.submit([(path.name, path.read_bytes()) for path in posters])


def job_seconds(service: Service, job_id: str) -> float:
    """Wait for a job to be final; its seconds from stored to finished (it must be done in full)."""
    job = service.finish(job_id)
    if job["done"] != job["total"]:
        raise SystemExit(f"job {job_id} ended {job['status']} with {job['failed']} failed posters")
    return job["finished_at"] - job["created_at"]


def cancel(service: Service, job_id: str) -> None:
    """Cancel a bulk job that must still be running (the measurement needed it busy to the end)."""
    try:
        with client(service.url) as http:
            http.cancel(job_id)
    except PosterqError as exc:  # it finished: the last span may have held its short last batches
        raise SystemExit(f"the bulk job ended too soon ({exc}): give it more posters") from exc


def beside_bulk(service: Service, sets: dict[str, list], loop_client: bool) -> dict:
    """A bulk job, with one /analysis/ loop client or none, and the small job posted 1 s after it.

    Returns the small job's seconds, the loop's figures while the small job ran, the batches the
    worker ran meanwhile, and the bulk job (still running, for the caller to time and cancel).
    """
    start = histogram_sums(service.url)
    bulk = submit(service.url, sets["bulk"])
    with Loop(service.url, sets["loop"] if loop_client else []) as loop:
        time.sleep(max(0.0, bulk["created_at"] + 1.0 - time.time()))
        small = submit(service.url, sets["small_beside"])
        with client(service.url) as http:
            # Bulk posters done while the small job ran (fair, in turns with it: about as many as it
            # has): the bulk job's count when the small one is stored, and when it is done.
            done = -http.job(bulk["id"])["done"]
            seconds = job_seconds(service, small["id"])
            small_end = time.time()
            done += http.job(bulk["id"])["done"]
            # From stored to the claim of the batch that took its first poster (below 0 when a
            # running batch took it in a top-up: claimed_at is then that batch's start).
            small = http.job(small["id"])
    first = small.get("claimed_at")
    first_wait = round(first - small["created_at"], 3) if first is not None else None
    return {"seconds": seconds, "loop": loop.figures(bulk["created_at"], small_end) if loop_client else None,
            "batches": _batches(start, histogram_sums(service.url)), "bulk": bulk, "bulk_done": done,
            "first_claim_s": first_wait}


def one_round(service: Service, sets: dict[str, list], args) -> dict:
    """Idle loop, the small job alone, bulk + loop + small job, then bulk + small job without the loop."""
    with Loop(service.url, sets["loop"]) as loop:
        time.sleep(args.seconds)
    idle = loop.figures()
    # The small job alone is short, so noisy: the median of --alone runs (results are not reused).
    alone = statistics.median(job_seconds(service, submit(service.url, sets["small_alone"])["id"])
                              for _ in range(args.alone))

    beside = beside_bulk(service, sets, loop_client=True)
    # One bulk batch's time: the worker's own batch timings while the bulk job runs alone.
    before = histogram_sums(service.url)
    time.sleep(args.batch_seconds)
    alone_batches = _batches(before, histogram_sums(service.url))
    cancel(service, beside["bulk"]["id"])
    if alone_batches["batches"] < 1:
        raise SystemExit("the bulk job ran no batch alone: give it more seconds (--batch-seconds)")
    # Without the loop the small job shares the worker with the bulk job only: its fair time is 2 x.
    pair = beside_bulk(service, sets, loop_client=False)
    cancel(service, pair["bulk"]["id"])
    return {"idle_analysis": idle, "small_alone_s": round(alone, 3),
            "bulk_analysis": beside["loop"], "small_beside_s": round(beside["seconds"], 3),
            "small_ratio": round(beside["seconds"] / alone, 2), "bulk_batch_ms": alone_batches["mean_ms"],
            "bulk_batch_posters": alone_batches["posters_per_batch"],
            "bulk_batches_timed": alone_batches["batches"], "batches_while_small_ran": beside["batches"],
            "small_first_claim_s": beside["first_claim_s"],
            "small_first_claim_no_loop_s": pair["first_claim_s"],
            "bulk_done_while_small_ran": beside["bulk_done"],
            "bulk_done_while_small_ran_no_loop": pair["bulk_done"],
            "small_beside_no_loop_s": round(pair["seconds"], 3),
            "small_ratio_no_loop": round(pair["seconds"] / alone, 2),
            "loadavg_after": [round(v, 2) for v in os.getloadavg()]}


def run_side(name: str, source_root: Path, files: dict[str, list[Path]], args, tmp: Path,
             **changes) -> dict:
    """One side: a service from source_root with one worker of concurrency 1, warmed, then the rounds.

    changes: settings of this side's service that differ from the defaults (interactive_share, say).
    """
    everything = [path for group in files.values() for path in group]
    (tmp / name).mkdir()
    _, _, settings = linked_settings(f"beside-{name}", everything, tmp / name)
    settings = settings.replace(**changes)
    sets = {**files, "loop": [path.read_bytes() for path in files["loop"]]}
    rounds = []
    with Service(settings, tmp / name, source_root) as service:
        service.start_worker(processes=1)
        with Loop(service.url, sets["loop"]):
            time.sleep(3)  # warm-up: the worker loads its model and both interpreters
        for number in range(args.rounds):
            rounds.append(one_round(service, sets, args))
            print(f"{name}, round {number + 1}: {_line(rounds[-1])}", flush=True)
    return {"rounds": rounds, "median": _median(rounds)}


def _median(rounds: list[dict]) -> dict:
    # The median of each figure over the rounds.
    def pick(path):
        values = [_get(r, path) for r in rounds if _get(r, path) is not None]
        return round(statistics.median(values), 3) if values else None
    keys = [("idle_analysis", "p50_ms"), ("idle_analysis", "p90_ms"), ("bulk_analysis", "p50_ms"),
            ("bulk_analysis", "p90_ms"), ("small_alone_s",), ("small_beside_s",), ("small_ratio",),
            ("bulk_batch_ms",), ("bulk_batch_posters",), ("small_beside_no_loop_s",),
            ("small_ratio_no_loop",), ("small_first_claim_s",), ("small_first_claim_no_loop_s",),
            ("bulk_done_while_small_ran",),
            ("bulk_done_while_small_ran_no_loop",)]
    return {"_".join(path): pick(path) for path in keys}


def _get(record: dict, path: tuple):
    for key in path:
        record = record[key]
    return record


def _line(r: dict) -> str:
    return (f"/analysis/ p50 idle {r['idle_analysis']['p50_ms']} ms, beside bulk "
            f"{r['bulk_analysis']['p50_ms']} ms; one bulk batch {r['bulk_batch_ms']} ms "
            f"({r['bulk_batch_posters']} posters); small job alone {r['small_alone_s']} s, beside "
            f"{r['small_beside_s']} s ({r['small_ratio']} x); without the loop "
            f"{r['small_beside_no_loop_s']} s ({r['small_ratio_no_loop']} x)")


def targets(m: dict) -> list[dict]:
    """The issue's two targets on one side's medians."""
    limit = m["idle_analysis_p50_ms"] + m["bulk_batch_ms"]
    return [{"target": "/analysis/ p50 beside bulk <= idle p50 + one bulk batch", "limit": round(limit, 1),
             "measured": m["bulk_analysis_p50_ms"], "met": m["bulk_analysis_p50_ms"] <= limit},
            {"target": "20-poster job beside bulk <= 3 x alone", "limit": 3.0,
             "measured": m["small_ratio"], "met": m["small_ratio"] <= 3.0}]


def table(sides: dict) -> str:
    """The sides' medians and targets as Markdown."""
    names = list(sides)
    rows = [("/analysis/ p50 idle (ms)", "idle_analysis_p50_ms"),
            ("/analysis/ p90 idle (ms)", "idle_analysis_p90_ms"),
            ("/analysis/ p50 beside bulk (ms)", "bulk_analysis_p50_ms"),
            ("/analysis/ p90 beside bulk (ms)", "bulk_analysis_p90_ms"),
            ("one bulk batch (ms)", "bulk_batch_ms"), ("posters per bulk batch", "bulk_batch_posters"),
            ("20-poster job alone (s)", "small_alone_s"), ("20-poster job beside bulk (s)", "small_beside_s"),
            ("beside / alone", "small_ratio"),
            ("20-poster job beside bulk, no /analysis/ client (s)", "small_beside_no_loop_s"),
            ("beside / alone, no /analysis/ client (fair: 2)", "small_ratio_no_loop"),
            ("small job claimed_at - created_at (s)", "small_first_claim_s"),
            ("the same, no /analysis/ client", "small_first_claim_no_loop_s"),
            ("bulk posters done while the small job ran (in turns: 20)", "bulk_done_while_small_ran"),
            ("the same, no /analysis/ client", "bulk_done_while_small_ran_no_loop")]
    lines = ["| median of rounds | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(str(sides[n]["median"][key]) for n in names) + " |"
              for label, key in rows]
    for name in names:
        lines += ["", f"targets, {name}:", ""]
        lines += [f"- {t['target']}: limit {t['limit']}, measured {t['measured']}: "
                  f"{'met' if t['met'] else 'NOT met'}" for t in sides[name]["targets"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the benchmark; print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder of posters (read only)")
    parser.add_argument("--quick", action="store_true", help="a bulk job of 600 posters, 1 round")
    parser.add_argument("--bulk", type=int, default=None, help="posters in the bulk job (default 1500)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds a side (default 2, 1 with --quick)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of the idle /analysis/ loop")
    parser.add_argument("--alone", type=int, default=3, help="runs of the small job alone a round (median)")
    parser.add_argument("--batch-seconds", type=float, default=4.0,
                        help="seconds of the bulk job alone over which one batch's time is taken")
    parser.add_argument("--interactive-share", type=float, nargs="+", default=None,
                        help="POSTERQ_INTERACTIVE_SHARE of this checkout's service; several: one side each")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder the report goes to")
    parser.add_argument("--before", default=None, help="a commit to measure first, beside this checkout")
    args = parser.parse_args()
    args.bulk = args.bulk or (600 if args.quick else 1500)
    args.rounds = args.rounds or (1 if args.quick else 2)

    counts = {"bulk": args.bulk, "small_alone": SMALL, "small_beside": SMALL, "loop": LOOP_POSTERS}
    picked = iter(pick_posters(args.data, sum(counts.values())))
    files = {name: [next(picked) for _ in range(n)] for name, n in counts.items()}
    report = {"benchmark": "beside_bulk", "command": " ".join(["python -m bench.beside_bulk", *sys.argv[1:]]),
              **provenance(), "settings": {"worker_concurrency": 1, "reuse_results": False, **counts,
                                           "rounds": args.rounds, "interactive_share": args.interactive_share,
                                           "idle_seconds": args.seconds, "alone_runs": args.alone,
                                           "batch_seconds": args.batch_seconds}}
    sides = {}
    with tempfile.TemporaryDirectory(prefix="posterq-beside-") as tmp:
        if args.before:
            commit = git_commit(args.before)
            with worktree(commit) as old:
                sides[f"before ({commit[:7]})"] = run_side("before", old, files, args, Path(tmp))
        for share in args.interactive_share or [None]:
            # None: the service's default POSTERQ_INTERACTIVE_SHARE.
            label = "this checkout" + (f", interactive share {share}" if share is not None else "")
            changes = {} if share is None else {"interactive_share": share}
            name = "after" if share is None else f"after-{share}"
            sides[label] = run_side(name, SOURCE_ROOT, files, args, Path(tmp), **changes)
    for side in sides.values():
        side["targets"] = targets(side["median"])
    report["sides"] = sides
    report["machine"]["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    save_report("beside_bulk", report, table(sides), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
