"""The service with default settings against the in-process limit, taken in turns on the same posters.

    .venv/bin/python -m bench.limit_gap ../shared/datasets/movie-posters/Images [--quick] [--posters N] \
        [--rounds R] [--ref REVISION]

A machine shared with other work changes speed from minute to minute, so the two figures are taken
in turns, R rounds (default 3), each round in the other order than the one before (limit then
service, then service then limit, ...): the limit of bench.limit (read + decode + invoke + label
rule, one process per core, no queue, no HTTP) and bench.scale's default run (one upload job of the
N posters through `posterq api` and one `posterq worker` with default settings, timed to the last
result row downloaded, every poster checked to have exactly one result). The worker is started once
and warmed up; it idles while the limit runs. Each round records the load average before it, and
the ratio service / limit of that round; the figure is the median round's ratio. With --ref, the
service of another commit (its tree exported by `git archive`) takes a turn in each
round too, so that a change's effect on the ratio is read in the same run. The issue's target:
at least 0.95 x. Prints the figures as JSON; bench/results/limit_gap-<time>.json keeps them.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

from bench.limit import run_processes
from bench.profile import cpu_seconds, processes
from bench.scale import TUNING, multipart, run_upload_job
from bench.service import (
    ROOT,
    Service,
    bench_settings,
    chosen_posters,
    client,
    git_commit,
    module_parser,
    provenance,
    save_report,
)
from posterq.bundle import load_bundle
from posterq.config import Settings, available_cores

#: The issue's target for the service with default settings, as a fraction of the limit.
TARGET = 0.95


def cpu_features() -> dict[str, bool]:
    """Whether the CPU has the vector features int8 and float kernels use (Linux /proc/cpuinfo)."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        flags = []
    return {flag: flag in flags for flag in ("avx2", "avx512f", "avx512_vnni", "avx_vnni")}


def _services(stack: contextlib.ExitStack, tmp: Path, settings: Settings, sources: dict[str, Path],
              warmup: tuple[bytes, str]) -> dict[str, tuple[Service, dict[str, int]]]:
    # One API and one default worker per source tree, each under its own key prefix and queue,
    # with the processes whose CPU is read (bench.profile's: Redis if local, the API, the worker).
    services = {}
    for label, source in sources.items():
        log_dir = tmp / f"logs-{label}"
        log_dir.mkdir()
        service = stack.enter_context(Service(settings.replace(key_prefix=f"{settings.key_prefix}-{label}",
                                                               queue=f"{settings.queue}-{label}"),
                                              log_dir, source_root=source))
        worker = service.start_worker(name=f"default-{label}")
        with client(service.url, timeout=120) as http:
            service.finish(http.submit_encoded(*warmup)["id"])  # untimed: every process loads its model
        redis_client = stack.enter_context(contextlib.closing(redis.Redis.from_url(settings.redis_url)))
        services[label] = (service, processes(service, worker, redis_client))
    return services


def cpu_per_poster(named: dict[str, int], before: dict[str, float], posters: int) -> dict[str, float]:
    """CPU ms a poster since `before`, by role: the pool processes, the rest of the worker, the API, Redis."""
    roles: dict[str, float] = {}
    for name, pid in named.items():
        role = ("pool processes" if name.startswith("pool")
                else "celery main process" if name.startswith("celery")
                else "redis-server" if name == "redis-server" else "api")
        roles[role] = roles.get(role, 0.0) + cpu_seconds(pid) - before[name]
    figures = {role: round(1000 * seconds / posters, 2) for role, seconds in roles.items()}
    figures["all"] = round(sum(figures.values()), 2)
    return figures


def exported(commit: str, folder: Path) -> Path:
    """The tree of a commit, written into folder by `git archive` (no worktree is registered)."""
    folder.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def measure(posters: list[Path], quick: bool, rounds: int = 3, ref: str | None = None) -> dict:
    """Rounds of the limit and the service with default settings in turns; each round's ratio, the median."""
    bundle = load_bundle(None)
    model, cores = str(bundle.path), available_cores()
    produced = provenance()
    names = [path.name for path in posters]
    body, content_type = multipart(posters)
    warmup = multipart(posters[: 4 * max(2, cores)])
    defaults = Settings()
    settings = bench_settings("gap", model=model, max_request_bytes=max(1 << 30, 2 * len(body)),
                              **{name: getattr(defaults, name) for name in TUNING})
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="posterq-gap-") as tmp, contextlib.ExitStack() as stack:
        sources = {"this": ROOT}
        if ref:
            sources["ref"] = exported(git_commit(ref), Path(tmp) / "tree-ref")
        services = _services(stack, Path(tmp), settings, sources, warmup)
        for number in range(rounds):
            turns = ["limit", *services]
            if number % 2:
                turns.reverse()
            result = {"round": number + 1, "order": turns}
            for turn in turns:
                result[f"loadavg_before_{turn}"] = [round(v, 2) for v in os.getloadavg()]
                if turn == "limit":
                    limit = run_processes("limit", posters, cores, model)
                    result["limit"], result["limit_cpu_ms_per_poster"] = (limit["posters_per_second"],
                                                                          limit["cpu_ms_per_poster"])
                else:
                    service, named = services[turn]
                    before = {name: cpu_seconds(pid) for name, pid in named.items()}
                    run = run_upload_job(service, names, body, content_type)
                    result[f"cpu_ms_per_poster_{turn}"] = cpu_per_poster(named, before, len(posters))
                    if not run["exactly_once"] or run["errors"]:
                        raise RuntimeError(f"round {number + 1}, {turn}: not every poster had exactly "
                                           f"one good result: {run}")
                    result[f"service_{turn}"] = run["posters_per_second"]
                    # Upload and store before the first token, download after the last result: the
                    # part of the job's time no worker can spend on posters.
                    result[f"stages_s_{turn}"] = run["stages_s"]
            for label in services:
                result[f"ratio_{label}"] = round(result[f"service_{label}"] / result["limit"], 3)
                # The same ratio from CPU time, which the machine's other work bends far less: the
                # limit's cost of a poster against the service's pool processes' and all its processes'.
                cpu, limit_cpu = result[f"cpu_ms_per_poster_{label}"], result["limit_cpu_ms_per_poster"]
                result[f"cpu_ratio_pool_{label}"] = round(limit_cpu / cpu["pool processes"], 3)
                result[f"cpu_ratio_all_{label}"] = round(limit_cpu / cpu["all"], 3)
            print(json.dumps(result), file=sys.stderr, flush=True)
            runs.append(result)
    figures = {"posters": len(posters), "cores": cores, "rounds": runs,
               "cpu_features": cpu_features()}
    for label in sources:
        figures[f"ratio_{label}_median"] = statistics.median(run[f"ratio_{label}"] for run in runs)
        for kind in ("pool", "all"):
            figures[f"cpu_ratio_{kind}_{label}_median"] = statistics.median(
                run[f"cpu_ratio_{kind}_{label}"] for run in runs)
        figures[f"service_{label}_median_posters_per_second"] = statistics.median(
            run[f"service_{label}"] for run in runs)
    figures["limit_median_posters_per_second"] = statistics.median(run["limit"] for run in runs)
    if ref:
        figures["ref"] = git_commit(ref)
    measured = figures["ratio_this_median"]
    targets = [{"target": f"Service with default settings at least {TARGET} x the limit, in the same run",
                "limit": TARGET, "measured": measured, "met": measured >= TARGET}]
    notes = ["Each round takes the limit and the service in turns, in the other order than the round "
             "before; its ratio is service / limit of that round, the figure the median round's.",
             "The worker is started once per source tree and warmed up with an untimed job; it idles "
             "while the other turns run.",
             "The load average before each turn is recorded: other work on the machine during a round "
             "changes that round's ratio, which is why the ratio is read per round.",
             "cpu_ratio_*: the limit's CPU ms a poster (its processes from the barrier on) over the "
             "service's (pool: the worker's pool processes; all: those, the Celery main process, every API "
             "process and redis-server when it runs on this host, from /proc/<pid>/stat around the job). "
             "On a machine busy with other work these move far less than posters/s; on an idle one with "
             "as many cores as processes, cpu_ratio_all approximates the posters/s ratio."]
    return {"name": "limit_gap", "command": " ".join(["python -m bench.limit_gap", *sys.argv[1:]]),
            "figures": figures, "targets": targets, "notes": notes, "provenance": produced,
            "settings": {"service": "default settings (batch_size, max_batch_wait, threads, solo_threads)",
                         "limit": "bench.limit's limit mode, one process per core"}}


def main() -> int:
    """Measure, print the figures as JSON and save them under bench/results/."""
    parser = module_parser(__doc__, 400, 120)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of limit and service (default 3)")
    parser.add_argument("--ref", help="a commit whose service takes a turn in each round too")
    args = parser.parse_args()
    save_report("limit_gap", measure(chosen_posters(args), args.quick, args.rounds, args.ref))
    return 0


if __name__ == "__main__":
    sys.exit(main())
