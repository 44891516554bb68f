"""The limit of this machine: decode, the model and both together, in processes with no queue and no HTTP.

    .venv/bin/python -m bench.limit ../shared/datasets/movie-posters/Images [--quick] [--posters N]

On the same posters (the first N files of the folder, sorted; default 400, 120 with --quick), in
posters/s, each in fresh `spawn` processes that load everything first and then start together:

1. decode + preprocess alone (posterq.imaging.load_input at the model's input size, the file read
   in the process), in one process and in one process per core;
2. the model alone: batched invoke (batch 16, Classifier with num_threads=1) on inputs decoded
   before the clock starts, in one process and in one process per core;
3. the limit: read + decode + preprocess + batched invoke + label rule (what `posterq label` does
   per batch, without writing results), one process per core, one interpreter thread each;
4. `posterq label` with its default settings on a folder of symlinks to the same posters, its own
   posters/s and the wall clock of the command.

`measure(posters, quick)` returns the figures as a dict; run as a script, it prints them as JSON.
"""

from __future__ import annotations

import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.service import ROOT, provenance, run_alone
from posterq.bundle import load_bundle
from posterq.config import BATCH_SIZE, SERVICE_BATCH_SIZE, available_cores

BATCH = SERVICE_BATCH_SIZE  # posters per invoke, as the service's batches
#: Distinct posters each process decodes before the clock starts for the model-alone figure; an
#: invoke's cost does not depend on the pixels (fixed input shape), so they are cycled through.
PREDECODED = 2 * BATCH


def _run_share(mode: str, paths: list[str], model: str, size: tuple[int, int], barrier, counter,
               results) -> None:
    """One process: set up, wait for the others, then take batches until none is left."""
    import numpy as np

    from posterq.imaging import load_input
    from posterq.pool import classify_paths, load_classifier

    classifier = load_classifier(model, num_threads=1) if mode in ("model", "limit") else None
    if mode == "model":
        pool = np.stack([classifier.preprocess(Path(path).read_bytes()) for path in paths[:PREDECODED]])
    batches = [paths[start:start + BATCH] for start in range(0, len(paths), BATCH)]
    barrier.wait()
    started, done, cpu = time.monotonic(), 0, time.process_time()
    while True:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        if index >= len(batches):
            break
        batch = batches[index]
        if mode == "decode":
            for path in batch:
                load_input(Path(path).read_bytes(), size)
        elif mode == "model":
            offset = (index * BATCH) % len(pool)
            classifier.predict(np.take(pool, np.arange(offset, offset + len(batch)), axis=0, mode="wrap"))
        else:
            classify_paths(classifier, batch)
        done += len(batch)
    results.put((started, time.monotonic(), done, time.process_time() - cpu))


def run_processes(mode: str, posters: list[Path], processes: int, model: str) -> dict:
    """Posters/s of `mode` over the posters in `processes` spawned processes, timed from a common start."""
    context = multiprocessing.get_context("spawn")
    size = load_bundle(model).input_size
    barrier, counter, results = context.Barrier(processes), context.Value("i", 0), context.Queue()
    paths = [str(path) for path in posters]
    children = [context.Process(target=_run_share, args=(mode, paths, model, size, barrier, counter, results))
                for _ in range(processes)]
    for child in children:
        child.start()
    shares = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join()
    seconds = max(end for _, end, _, _ in shares) - min(start for start, _, _, _ in shares)
    total = sum(done for _, _, done, _ in shares)
    if total != len(posters):
        raise RuntimeError(f"{mode}: {total} posters done, expected {len(posters)}")
    return {"mode": mode, "processes": processes, "posters": total, "seconds": round(seconds, 3),
            "posters_per_second": round(total / seconds, 1),
            # CPU time from the barrier on (all threads of each process): the cost of a poster,
            # which other work on the machine changes far less than it changes posters/s.
            "cpu_ms_per_poster": round(1000 * sum(cpu for *_, cpu in shares) / total, 2),
            "per_process": [done for _, _, done, _ in shares]}


def run_label(posters: list[Path]) -> dict:
    """`posterq label` (defaults) on a folder of symlinks to the posters: its posters/s and wall clock."""
    with tempfile.TemporaryDirectory(prefix="posterq-limit-") as tmp:
        folder = Path(tmp) / "posters"
        folder.mkdir()
        for path in posters:
            (folder / path.name).symlink_to(path.resolve())
        out = Path(tmp) / "genres.csv"
        command = [sys.executable, "-m", "posterq.cli", "label", str(folder), "--no-progress",
                   "--out", str(out)]
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        wall = time.monotonic() - started
        rows = len(out.read_text().splitlines()) - 1  # the header
    match = re.search(r"labelled (\d+) posters in ([\d.]+) s \(([\d.]+) posters/s\): (\d+) ok", done.stdout)
    if match is None:
        raise RuntimeError(f"cannot read the summary of posterq label: {done.stdout!r}")
    return {"command": "posterq label DIR --no-progress --out FILE (default settings)",
            "posters": int(match[1]), "ok": int(match[4]), "rows_written": rows,
            "seconds": float(match[2]), "posters_per_second": float(match[3]), "wall_s": round(wall, 2),
            "wall_posters_per_second": round(len(posters) / wall, 1)}


def measure(posters: list[Path], quick: bool) -> dict:
    """Decode alone, the model alone, the limit and `posterq label` on the same posters, in posters/s."""
    bundle = load_bundle(None)
    model, cores = str(bundle.path), available_cores()
    produced = provenance()  # before the runs: the load average they started under
    counts = sorted({1, cores})
    runs = {}
    for mode in ("decode", "model"):
        for processes in counts:
            runs[f"{mode}_{processes}p"] = run_processes(mode, posters, processes, model)
    runs[f"limit_{cores}p"] = run_processes("limit", posters, cores, model)
    label = run_label(posters)
    limit = runs[f"limit_{cores}p"]["posters_per_second"]
    figures = {
        "posters": len(posters), "cores": cores, "batch_size": BATCH, "interpreter_threads": 1,
        "decode_1p_posters_per_second": runs["decode_1p"]["posters_per_second"],
        f"decode_{cores}p_posters_per_second": runs[f"decode_{cores}p"]["posters_per_second"],
        "model_1p_posters_per_second": runs["model_1p"]["posters_per_second"],
        f"model_{cores}p_posters_per_second": runs[f"model_{cores}p"]["posters_per_second"],
        "limit_posters_per_second": limit,
        "label_posters_per_second": label["posters_per_second"],
        "label_wall_s": label["wall_s"],
        "label_wall_posters_per_second": label["wall_posters_per_second"],
        "runs": list(runs.values()), "label": label,
        "model": {**bundle.identity, "sha256": bundle.meta["sha256"], "input_size": list(bundle.input_size)},
        "provenance": produced,
    }
    # The serial bound if decode and invoke of one process simply add up, per core, times the cores.
    decode_ms = 1000 / runs["decode_1p"]["posters_per_second"]
    invoke_ms = 1000 / runs["model_1p"]["posters_per_second"]
    figures["additive_bound_posters_per_second"] = round(cores * 1000 / (decode_ms + invoke_ms), 1)
    notes = [
        "Each figure is timed in fresh spawn processes from a barrier after they loaded the model "
        "(and, for the model alone, decoded their inputs) to the last batch done; batches are taken "
        "from a shared counter, so a slow process takes fewer.",
        f"The model alone cycles through {PREDECODED} posters decoded per process before the clock "
        "starts: an invoke's cost does not depend on the pixels.",
        "The limit is read + decode + preprocess + batched invoke + label rule "
        "(posterq.pool.classify_paths), one process per core, one interpreter thread each, "
        f"batch {BATCH}; no result is written.",
        f"posterq label ran with its default settings (one process per core, batch {BATCH_SIZE}); "
        "its posters/s is its own summary (from its start of work, model loading excluded), wall_s includes "
        "interpreter start, model loading and writing the CSV.",
    ]
    if quick:
        notes.append(f"quick mode: {len(posters)} posters, each configuration once; figures are rough")
    # The targets against the limit are about the service: bench.scale (given this
    # limit) or the orchestrator computes them.
    targets: list[dict] = []
    return {"name": "limit", "figures": figures, "targets": targets, "notes": notes}


if __name__ == "__main__":
    sys.exit(run_alone(measure, __doc__, 400, 120))
