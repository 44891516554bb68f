"""Every benchmark of posterq in one run, on the same machine and posters, side by side.

    .venv/bin/python -m bench.all ../shared/datasets/movie-posters/Images [--quick] [--posters N]

In order: the limit (decode, model alone, both on every core) and `posterq label` (bench.limit);
the service end to end for 1 and 2 worker processes and the defaults, and two pinned worker hosts
against one (bench.scale); the original design's server with the shipped and the seed model
(bench.original); peak memory of the API and a worker (bench.memory); Redis commands, CPU
and bytes per poster and the ceiling of one Redis (bench.redis_cost); /analysis/ during a bulk job,
two API keys' shares and a lone bulk job against the FIFO claim of a recorded commit
(bench.fairness, at least 1,500 posters a bulk job, 300 with --quick). It needs Redis
(POSTERQ_REDIS_URL, else the service's default; private key prefixes) and writes
bench/results/all-<time>.json (machine, commit, model, parameters, every figure), a Markdown
table beside it (the README quotes it) and a plot. --quick took under 3 minutes before
bench.fairness joined, whose --quick part adds about 70 s.
"""

import argparse
import importlib
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from bench.report import cross_targets, markdown, plot
from bench.service import RESULTS, pick_posters, provenance
from posterq.bundle import load_bundle

MODULES = ("limit", "scale", "original", "memory", "redis_cost", "fairness")


def main() -> int:
    """Run every benchmark; print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder of posters (read only)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer posters and shorter runs (a few minutes)")
    parser.add_argument("--posters", type=int, help="posters per job (default 1,000; --quick 120)")
    parser.add_argument("--only", nargs="+", choices=MODULES, help="run only these benchmarks")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    count = args.posters or (120 if args.quick else 1000)
    posters = pick_posters(args.data, count)
    bundle = load_bundle(None)
    produced = provenance()
    started = time.monotonic()
    results = {}
    for name in args.only or MODULES:
        began = time.monotonic()
        print(f"--- {name}", flush=True)
        results[name] = importlib.import_module(f"bench.{name}").measure(posters, args.quick)
        results[name]["seconds"] = round(time.monotonic() - began, 1)
        print(json.dumps(results[name]["figures"], indent=1)[:2000], flush=True)
    targets = [target for result in results.values() for target in result.get("targets", [])]
    targets += cross_targets(results)
    report = {"benchmark": "all", "command": " ".join(["python -m bench.all", *sys.argv[1:]]),
              **produced, "model": {**bundle.identity, "sha256": bundle.meta["sha256"]},
              "parameters": {"quick": args.quick, "posters": count, "data": str(args.data),
                             "selection": "first N files, sorted by name"},
              "seconds": round(time.monotonic() - started, 1), "results": results, "targets": targets}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"all{'-quick' if args.quick else ''}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    path.with_suffix(".md").write_text(table)
    plot(report, path.with_suffix(".png"))
    print("\n" + table)
    print(f"wrote {path}, {path.with_suffix('.md').name} and {path.with_suffix('.png').name} "
          f"in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
