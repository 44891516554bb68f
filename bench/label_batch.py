"""The batch size of `posterq label`: posters per invoke, measured as label runs them.

    .venv/bin/python -m bench.label_batch ../shared/datasets/movie-posters/Images [--quick] [--posters N]

On the same posters (the first N files of the folder, sorted; default 600, 160 with --quick):

1. `posterq label`'s own path (posterq.pool.label_files: one spawn process per core, one
   interpreter thread each, read + decode + invoke + label rule) at each batch size, in
   interleaved rounds so that a burst of load from elsewhere slows one round of every size, not
   every round of one; each size's best round counts;
2. the model alone: ms per poster of one batched invoke at each batch size, one thread, inputs
   decoded before the clock starts (the cost the batch size changes directly).

Writes bench/results/label_batch-<time>.json and .png (posters/s and ms per poster against the
batch size) and prints the JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from bench.service import ROOT, chosen_posters, module_parser, provenance
from posterq.config import BATCH_SIZE, available_cores

SIZES = (1, 2, 4, 8, 16, 32, 64)
ROUNDS = 3
INVOKE_REPEATS = 30


def label_rate(paths: list[Path], batch_size: int, workers: int) -> float:
    """Posters/s of posterq.pool.label_files over paths, wall clock, process start-up included."""
    from posterq.pool import label_files

    files = [(path.name, path) for path in paths]
    started = time.monotonic()
    count = sum(1 for _ in label_files(files, workers=workers, batch_size=batch_size, progress=False))
    return count / (time.monotonic() - started)


def invoke_ms(paths: list[Path], sizes=SIZES, model: str | Path | None = None) -> dict[int, float]:
    """Median ms per poster of one invoke at each batch size, one interpreter thread (model: a bundle
    folder or name; None: the default)."""
    import numpy as np

    from posterq.pool import load_classifier

    classifier = load_classifier(model, num_threads=1)
    decoded = np.stack([classifier.preprocess(path.read_bytes()) for path in paths[:max(sizes)]])
    figures = {}
    for size in sizes:
        batch = decoded[:size]
        classifier.predict(batch)  # the first invoke at a new shape resizes the interpreter
        times = []
        for _ in range(INVOKE_REPEATS):
            started = time.perf_counter()
            classifier.predict(batch)
            times.append(time.perf_counter() - started)
        figures[size] = round(1000 * statistics.median(times) / size, 2)
    return figures


def measure(paths: list[Path], rounds: int = ROUNDS) -> dict:
    """Every batch size's label posters/s (best of interleaved rounds) and invoke ms per poster."""
    workers = available_cores()
    best = {size: 0.0 for size in SIZES}
    for _ in range(rounds):
        for size in SIZES:
            best[size] = max(best[size], label_rate(paths, size, workers))
    invoke = invoke_ms(paths)
    chosen = max(SIZES, key=lambda size: best[size])
    return {"name": "label_batch", "posters": len(paths), "workers": workers, "rounds": rounds,
            "default_before": BATCH_SIZE, "best": chosen,
            "label_posters_per_second": {size: round(rate, 1) for size, rate in best.items()},
            "invoke_ms_per_poster_1_thread": invoke,
            "notes": ["label: posterq.pool.label_files, one spawn process per core, one thread each; "
                      "wall clock of the whole call, process start-up and model loading included "
                      "(the same for every size), as a user of posterq label sees it",
                      "invoke: Classifier.predict on posters decoded before the clock, median of "
                      f"{INVOKE_REPEATS}, per poster"]}


def plot(report: dict, out: Path) -> None:
    """posters/s of label and invoke ms per poster against the batch size, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(SIZES)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(sizes, [report["label_posters_per_second"][s] for s in sizes], marker="o")
    left.set_title(f"posterq label, {report['workers']} processes, {report['posters']} posters")
    left.set_ylabel("posters/s")
    right.plot(sizes, [report["invoke_ms_per_poster_1_thread"][s] for s in sizes], marker="o", color="C1")
    right.set_title("one invoke, one thread")
    right.set_ylabel("ms per poster")
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xticks(sizes, [str(s) for s in sizes])
        axis.set_xlabel("batch size (posters per invoke)")
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> int:
    """Measure, write the JSON and the plot under bench/results, print the JSON."""
    args = module_parser(__doc__, 600, 160).parse_args()
    report = {**measure(chosen_posters(args), rounds=1 if args.quick else ROUNDS), **provenance()}
    stem = ROOT / "bench" / "results" / f"label_batch-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, stem.with_suffix(".png"))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
