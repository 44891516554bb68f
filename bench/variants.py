"""Bundles side by side on this CPU: is the shipped int8 model faster than a float one here?

    .venv/bin/python -m bench.variants ../shared/datasets/movie-posters/Images [--quick] [--posters N] \
        [--bundle DIR_OR_NAME ...] [--git REV:FOLDER ...]

int8's lead over float depends on the CPU (int8 kernels gain most with fast int8 dot products:
AVX-512 VNNI, AVX-VNNI, AMX), so the card's times hold for the CPU they were measured on only.
This times each bundle on the same posters, in one process, one interpreter thread, in
interleaved rounds (a burst of load from elsewhere slows one round of every bundle, not every
round of one; each bundle's best round counts):

1. invoke: median ms per poster of one invoke of 1 poster (the card's measure) and of a batch of
   the service's size, on posters decoded before the clock starts;
2. path: ms per poster of read + decode + invoke + label rule in batches of the service's size
   (posterq.pool.classify_paths, what a worker's pool process does per batch).

Bundles: the shipped default, and by default 1.3.0's float16 bundle (same architecture and input
size) taken from git history (--git REV:FOLDER; --bundle adds a folder or a shipped name). Writes
bench/results/variants-<time>.json (with the CPU's model and vector features) and prints a table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.label_batch import invoke_ms
from bench.service import RESULTS, ROOT, chosen_posters, git_commit, module_parser, provenance
from posterq.bundle import META_FILE, MODEL_FILE, load_bundle
from posterq.config import SERVICE_BATCH_SIZE
from posterq.cpu import describe

#: 1.3.0, the last float16 bundle shipped (576x384, as the int8 1.4.0 that replaced it).
FLOAT16_FROM_GIT = "5896f4f:models/effnet-lite0-posters"
ROUNDS, QUICK_ROUNDS = 3, 1


def bundle_from_git(spec: str, into: Path) -> Path:
    """Write the bundle FOLDER held by commit REV (spec "REV:FOLDER") into a new folder; return it."""
    revision, _, folder = spec.partition(":")
    out = into / f"{git_commit(revision)[:7]}-{Path(folder).name}"
    out.mkdir(parents=True)
    for name in (MODEL_FILE, META_FILE):
        blob = subprocess.run(["git", "show", f"{revision}:{folder}/{name}"], cwd=ROOT, check=True,
                              capture_output=True).stdout
        (out / name).write_bytes(blob)
    return out


def path_ms(paths: list[Path], model: str | Path) -> float:
    """ms per poster of read + decode + invoke + label rule, batches of the service's size, one thread."""
    from posterq.pool import classify_paths, load_classifier

    classifier = load_classifier(model, num_threads=1)
    started = time.perf_counter()
    for start in range(0, len(paths), SERVICE_BATCH_SIZE):
        classify_paths(classifier, paths[start:start + SERVICE_BATCH_SIZE])
    return round(1000 * (time.perf_counter() - started) / len(paths), 2)


def measure(paths: list[Path], models: dict[str, str | Path], rounds: int) -> dict:
    """Each bundle ({where it came from: its folder or name}) timed: its best figures over interleaved
    rounds, and its time over the first bundle's."""
    sizes = (1, SERVICE_BATCH_SIZE)
    labels = {}
    for source, model in models.items():
        bundle = load_bundle(model)
        labels[source] = {"label": f"{bundle.name} {bundle.version} ({bundle.meta.get('variant')})",
                          "source": source, "sha256": bundle.meta["sha256"], "input": list(bundle.input_size)}
    best: dict[str, dict[str, float]] = {source: {} for source in models}
    load = []
    for _ in range(rounds):
        for source, model in models.items():
            figures = {f"invoke_{size}_ms_per_poster": ms
                       for size, ms in invoke_ms(paths, sizes, model).items()}
            figures[f"path_{SERVICE_BATCH_SIZE}_ms_per_poster"] = path_ms(paths, model)
            mine = best[source]
            for key, value in figures.items():
                mine[key] = min(mine.get(key, float("inf")), value)
        load.append(round(os.getloadavg()[0], 2))
    first = next(iter(best.values()))
    rows = {labels[key]["label"]: {**labels[key], **figures,
                                   "over_first": {name: round(value / first[name], 3)
                                                  for name, value in figures.items()}}
            for key, figures in best.items()}
    return {"posters": len(paths), "rounds": rounds, "threads": 1, "batch": SERVICE_BATCH_SIZE,
            "loadavg_1m_after_each_round": load, "bundles": rows}


def table(report: dict) -> str:
    """The bundles side by side, as Markdown, with the CPU they ran on."""
    batch = report["batch"]
    keys = ("invoke_1_ms_per_poster", f"invoke_{batch}_ms_per_poster", f"path_{batch}_ms_per_poster")
    lines = [f"On {describe(report['machine']['cpu'])}, one thread, {report['posters']} posters, best of "
             f"{report['rounds']} interleaved rounds; load average (1 min) after each round: "
             f"{report['loadavg_1m_after_each_round']}", "",
             f"| bundle | invoke of 1, ms/poster | invoke of {batch}, ms/poster | "
             f"read + decode + invoke + rule, batches of {batch}, ms/poster |", "|---|---|---|---|"]
    for label, row in report["bundles"].items():
        cells = [f"{row[key]} ({row['over_first'][key]} x)" for key in keys]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    """Measure the bundles, write bench/results/variants-<time>.json, print the table."""
    parser = module_parser(__doc__, 160, 32)
    parser.add_argument("--bundle", action="append", default=[],
                        help="a bundle folder or shipped name to time besides the default")
    parser.add_argument("--git", action="append", default=None, metavar="REV:FOLDER",
                        help=f"a bundle folder as a commit holds it (default {FLOAT16_FROM_GIT})")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    produced = provenance()  # before the runs: the load average they started under
    with tempfile.TemporaryDirectory(prefix="posterq-variants-") as tmp:
        shipped = load_bundle(None).path
        models = {f"shipped: {shipped.name}": shipped, **{name: name for name in args.bundle},
                  **{f"git: {spec}": bundle_from_git(spec, Path(tmp))
                     for spec in args.git or [FLOAT16_FROM_GIT]}}
        figures = measure(chosen_posters(args), models, QUICK_ROUNDS if args.quick else ROUNDS)
    command = " ".join(["python -m bench.variants", *sys.argv[1:]])
    report = {"benchmark": "variants", "command": command, **produced, **figures}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out / f"variants{'-quick' if args.quick else ''}-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
