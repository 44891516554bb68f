"""Fair share between jobs and API keys, and the interactive lane of /analysis/, in one run.

    .venv/bin/python -m bench.fairness ../shared/datasets/movie-posters/Images [--quick] [--posters N] \
        [--bulk N] [--rounds N] [--commit REV] [--fifo-commit REV] [--out DIR]

It needs Redis (POSTERQ_REDIS_URL, else the service's default) and starts one API and one worker
with their DEFAULT settings and the shipped model, with two API keys (POSTERQ_API_KEYS, fresh
random keys A and B), under a private key prefix and queue. The bulk job is --bulk posters
(default 1,500, 300 with --quick; at least the posters given): the --posters files of the folder
(first N, sorted; 1,000 and 120 by default) cycled, each under its own name. Every job is an
upload (POST /jobs, multipart `files`, encoded before any clock starts). In order:

(a) idle: sequential POST /analysis/ calls of one poster each (key A), 0.25 s apart;
(c) alone: key B's 20-poster job on the idle service, three times (the median counts);
(e) a lone bulk job of key A: posters / (the job final - just before the POST);
(b) and (c) key A's bulk job again; from the moment its POST is answered, the same /analysis/
    calls of key A (the bulk job's own key: only the lane can help them) until the job is final,
    504s counted; 1 s after that moment key B submits its 20-poster job, timed to done;
(d) keys A and B each POST the bulk job at the same moment: each job's posters/s, each one's share
    of the posters done while both were running (polled progress, 0.25 s), and the total against
    the lone job of (e);
(e) the same lone bulk job on the FIFO claim: the service of the recorded commit --fifo-commit
    (default 5e740e2, before the fair scheduler), run from a `git worktree` of it (removed
    afterwards) with the same model, settings and keys. The processes' cwd and PYTHONPATH, and
    where a process started that way imports posterq, api and worker from, are checked and
    recorded. The lone job runs --rounds times on each side (default 2, 1 with --quick),
    interleaved (this checkout, FIFO, FIFO, this checkout, ...), and each side's mean counts.

--commit runs this benchmark's own side from a worktree of that commit instead of this checkout.
Every bulk job is checked to give each poster exactly one result. Alone it prints the figures as
JSON and writes bench/results/fairness-<time>.json and a plot; bench.all calls `measure`.
The runs (through posterq.client.ServiceClient) are bench.fairness_runs; targets, notes and the
plot, bench.fairness_report.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.fairness_report import notes, plot, targets
from bench.fairness_runs import (
    SMALL,
    Key,
    analysis_calls,
    during_bulk,
    latency,
    lone_bulk,
    multipart,
    timed_job,
    two_keys,
    warm_up,
)
from bench.scale import TUNING
from bench.service import (
    RESULTS,
    Service,
    bench_settings,
    chosen_posters,
    git_commit,
    imported_from,
    module_parser,
    process_source,
    provenance,
    worktree,
)
from posterq.bundle import load_bundle
from posterq.config import Settings, available_cores
from tests.harness import SOURCE_ROOT

#: The recorded commit with today's FIFO claim (one `P:ready` list), before the fair scheduler.
FIFO_COMMIT = "5e740e2"
BULK, QUICK_BULK = 1500, 300


def _verified(service: Service, worker, source_root: Path) -> list[dict]:
    """The running API's and worker's cwd and PYTHONPATH, which must be source_root."""
    found = [{"process": name, **process_source(pid)}
             for name, pid in (("api", service.api.pid), ("worker", worker.pid))]
    for entry in found:
        if Path(entry["cwd"]).resolve() != source_root.resolve() or entry["pythonpath"] != str(source_root):
            raise AssertionError(f"{entry['process']} does not run from {source_root}: {entry}")
    return found


def _origin(source_root: Path) -> dict[str, str]:
    origin = imported_from(source_root)
    if not all(Path(path).resolve().is_relative_to(source_root.resolve()) for path in origin.values()):
        raise AssertionError(f"a process started from {source_root} imports elsewhere: {origin}")
    return origin


def _strip(run: dict) -> dict:
    return {k: v for k, v in run.items() if k not in ("progress", "origin", "sent", "final_seen")}


def measure(posters: list[Path], quick: bool, bulk: int | None = None, commit: str | None = None,
            fifo_commit: str = FIFO_COMMIT, rounds: int | None = None) -> dict:
    """The figures (a) to (e) and the issue's targets; see the module's docstring."""
    bundle = load_bundle(None)
    produced = provenance()
    size = max(bulk or (QUICK_BULK if quick else BULK), len(posters))
    rounds = rounds or (1 if quick else 2)
    # The lone bulk job's runs, ABBA (this code, FIFO, FIFO, this code, ...) against drift; the
    # first is taken with (a)-(d), on the same worker.
    order = ("current fifo fifo current " * rounds).split()[: 2 * rounds]
    data = {path: path.read_bytes() for path in posters}
    cycled = [posters[i % len(posters)] for i in range(size)]
    bulk_body = multipart([(f"{i:05d}-{path.name}", data[path]) for i, path in enumerate(cycled)])
    small_body = multipart([(f"{i:05d}-{path.name}", data[path]) for i, path in enumerate(cycled[:SMALL])])
    warm_body = multipart([(path.name, data[path]) for path in posters[:8]])
    blobs = list(data.values())
    keys = {"A": secrets.token_urlsafe(32), "B": secrets.token_urlsafe(32)}
    defaults = Settings()
    common = {"model": str(bundle.path), "api_keys": " ".join(keys.values()), "heartbeat_interval": 1,
              "max_request_bytes": max(1 << 30, 2 * len(bulk_body[0])),
              **{name: getattr(defaults, name) for name in TUNING}}
    idle_calls, max_calls = (15, 60) if quick else (40, 200)
    fifo_full = git_commit(fifo_commit)
    lone: dict[str, list[dict]] = {"current": [], "fifo": []}

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="posterq-fairness-")))
        old = stack.enter_context(worktree(fifo_full))
        ours = stack.enter_context(worktree(git_commit(commit))) if commit else SOURCE_ROOT
        sources = {"current": {"source_root": str(ours), "imports": _origin(ours)},
                   "fifo": {"source_root": str(old), "imports": _origin(old)}}
        for name in ("current", "fifo"):
            (tmp / name).mkdir()
        current = stack.enter_context(Service(bench_settings("fairness", **common), tmp / "current", ours))
        fifo = stack.enter_context(Service(bench_settings("fairness-fifo", **common), tmp / "fifo", old))
        clients = {side: {key: Key(service.url, value) for key, value in keys.items()}
                   for side, service in (("current", current), ("fifo", fifo))}

        def lone_rounds(side: str, service: Service, count: int) -> None:
            worker = service.start_worker()
            sources[side]["processes"] = _verified(service, worker, Path(sources[side]["source_root"]))
            warm_up(clients[side], warm_body, blobs)
            for _ in range(count):
                lone[side].append(lone_bulk(clients[side], bulk_body, size))
                print(f"lone bulk job, {side}: {lone[side][-1]['posters_per_second']} posters/s",
                      file=sys.stderr, flush=True)
            service.stop_worker(worker)

        worker = current.start_worker()
        sources["current"]["processes"] = _verified(current, worker, ours)
        mine = clients["current"]
        warm_up(mine, warm_body, blobs)
        idle = analysis_calls(mine["A"], blobs, idle_calls, time.time())
        alone = [timed_job(mine["B"], small_body, SMALL) for _ in range(3)]
        lone["current"].append(lone_bulk(mine, bulk_body, size))
        busy = during_bulk(mine, bulk_body, small_body, size, blobs, max_calls)
        pair = two_keys(mine, bulk_body, size)
        current.stop_worker(worker)
        print(f"(a)-(d) done; lone bulk job: {lone['current'][0]['posters_per_second']} posters/s",
              file=sys.stderr, flush=True)
        for side, group in itertools.groupby(order[1:]):
            lone_rounds(side, fifo if side == "fifo" else current, len(list(group)))

    idle_figures, busy_figures = latency(idle), latency(busy["calls"])
    alone_s = statistics.median(run["seconds"] for run in alone)
    small_s = busy["small"]["seconds"]
    rates = {side: round(statistics.mean(run["posters_per_second"] for run in runs), 1)
             for side, runs in lone.items()}
    figures = {
        "posters": len(posters), "bulk_posters": size, "small_posters": SMALL, "cores": available_cores(),
        "keys": 2, "rounds_of_lone_job": rounds, "order_of_lone_jobs": order,
        "analysis_idle": idle_figures, "analysis_during_bulk": busy_figures,
        "small_job": {"alone_s": round(alone_s, 3), "alone_runs_s": [run["seconds"] for run in alone],
                      "alone_own_s": [run["own_seconds"] for run in alone], "during_bulk_s": small_s,
                      "during_bulk_own_s": busy["small"]["own_seconds"],
                      "submitted_after_bulk_answered_s": busy["small_submitted_after_s"],
                      "over_alone": round(small_s / alone_s, 2)},
        "two_keys": {**{k: v for k, v in pair.items() if k not in ("A", "B", "progress", "origin")},
                     "A": _strip(pair["A"]), "B": _strip(pair["B"]),
                     "lone_posters_per_second": rates["current"],
                     "total_over_lone": round(pair["total_posters_per_second"] / rates["current"], 3)},
        "lone_bulk": {"current_posters_per_second": rates["current"],
                      "fifo_posters_per_second": rates["fifo"],
                      "over_fifo": round(rates["current"] / rates["fifo"], 3),
                      "current_runs": [_strip(run) for run in lone["current"]],
                      "fifo_runs": [_strip(run) for run in lone["fifo"]]},
        "during_bulk_jobs": {"bulk": busy["bulk"], "small": _strip(busy["small"])},
        "fifo": {"commit": fifo_full, **sources["fifo"]},
        "current": {"commit": git_commit(commit) if commit else produced["git"]["commit"],
                    "dirty": None if commit else produced["git"]["dirty"], **sources["current"]},
        "exactly_once": not any(run["problems"] for run in [*lone["current"], *lone["fifo"], pair["A"],
                                                             pair["B"], busy["small"], *alone])
                        and not busy["bulk"]["problems"],
        "model": {**bundle.identity, "sha256": bundle.meta["sha256"]}, "provenance": produced,
        # Last: long, for the plot.
        "series": {"two_keys": {key: pair["progress"][key] for key in ("A", "B")},
                   "lone_current": lone["current"][0]["progress"], "lone_fifo": lone["fifo"][0]["progress"],
                   "during_bulk": busy["progress"], "analysis_during_bulk": busy["calls"]},
    }
    return {"name": "fairness", "figures": figures, "targets": targets(figures),
            "notes": notes(figures, quick)}


def main() -> int:
    """Measure; print the figures as JSON; write them and the plot under --out."""
    parser = module_parser(__doc__, 1000, 120)
    parser.add_argument("--bulk", type=int, default=None,
                        help=f"posters in a bulk job (default {BULK}, {QUICK_BULK} with --quick)")
    parser.add_argument("--commit", default=None, help="measure this commit (a worktree), not this checkout")
    parser.add_argument("--fifo-commit", default=FIFO_COMMIT, help="the recorded commit with the FIFO claim")
    parser.add_argument("--rounds", type=int, default=None,
                        help="runs of the lone bulk job on each side (default 2, 1 with --quick)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = measure(chosen_posters(args), args.quick, args.bulk, args.commit, args.fifo_commit, args.rounds)
    shown = {**result, "figures": {k: v for k, v in result["figures"].items() if k != "series"}}
    print(json.dumps(shown, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out / f"fairness{'-quick' if args.quick else ''}-{stamp}.json"
    path.write_text(json.dumps({"benchmark": "fairness", "command": " ".join(["python -m bench.fairness",
                                                                             *sys.argv[1:]]),
                                **result}, indent=2) + "\n")
    plot(result["figures"], path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
