"""Ship from the front of accuracy against cost: every variant of every input size, one rule.

    posterq ship runs/effnet-lite0-posters/384x256 runs/effnet-lite0-posters/480x320 \
        runs/effnet-lite0-posters/576x384 --out models/effnet-lite0-posters

Each argument is the work folder of one `posterq train --input-size HxW --work ...` run: its
model.json holds every exported variant's validation metrics and thresholds (each variant ran
the whole validation split through posterq's runtime), variants/<name>/ its TFLite file. The
runs were timed at different moments; here every variant is timed again, side by side in one
process, so that the speeds compared are measured under the same conditions.
"""

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from posterq.classifier import Classifier
from posterq.cpu import cpu_facts
from posterq.training.bundle_io import write_bundle
from posterq.training.shipping import RULE, choose_variant, cpu_note, on_front

log = logging.getLogger(__name__)

#: A second, faster bundle ships when the front has a point this much faster than the default
#: whose metrics stay within this looser tolerance of the best: users who label millions of
#: posters may prefer it, and the card and README state what it costs.
FAST_TOLERANCE = {"macro_roc_auc": 0.010, "macro_average_precision": 0.020, "micro_f1": 0.020}
FAST_MIN_SPEEDUP = 1.5
HEADLINE = ("macro_roc_auc", "macro_average_precision", "micro_f1", "samples_f1")


def gather(runs: list[Path]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Read each run's variants as candidates named "<H>x<W> <variant>"; also return each run's metadata."""
    candidates, metas = {}, {}
    for run in map(Path, runs):
        meta = json.loads((run / "model.json").read_text())
        size = f"{meta['input']['height']}x{meta['input']['width']}"
        metas[size] = {**meta, "work": str(run)}
        for variant, entry in meta["comparison"]["variants"].items():
            candidates[f"{size} {variant}"] = {**entry, "input_size": size, "variant": variant,
                                               "folder": str(run / "variants" / variant),
                                               "ms_at_training": entry["ms_per_poster_1_core"]}
    return candidates, metas


def retime(candidates: dict[str, dict], rounds: int = 3, repeats: int = 40) -> None:
    """Time every candidate again on one core, interleaved, keeping each one's best median (ms)."""
    from posterq.training.export import milliseconds_per_poster

    classifiers = {name: Classifier(entry["folder"], num_threads=1) for name, entry in candidates.items()}
    rng = np.random.default_rng(0)
    posters = {name: rng.integers(0, 256, (8, *c.bundle.input_size, 3)).astype(np.float32)
               for name, c in classifiers.items()}
    best = {name: float("inf") for name in candidates}
    for round_index in range(rounds):
        # Interleaved rounds: a burst of load from elsewhere slows one round of every variant,
        # not every round of one; the best median is the least disturbed.
        for name, classifier in classifiers.items():
            best[name] = min(best[name], milliseconds_per_poster(classifier, posters[name], repeats))
        log.info("timing round %d of %d done", round_index + 1, rounds)
    for name, entry in candidates.items():
        entry["ms_per_poster_1_core"] = round(best[name], 2)


def choose(candidates: dict[str, dict]) -> dict:
    """The default (RULE) and, when the front earns it, a faster second choice; with the why of each."""
    default = choose_variant(candidates)
    fast = choose_variant(candidates, FAST_TOLERANCE)
    ms = {name: candidates[name]["ms_per_poster_1_core"] for name in candidates}
    speedup = ms[default["shipped"]] / ms[fast["shipped"]]
    chosen = {"default": default, "front": on_front(candidates)}
    if speedup >= FAST_MIN_SPEEDUP:
        fast["why"] = (f"{fast['shipped']} is the fastest variant within the looser tolerance "
                       f"{FAST_TOLERANCE} of the best, {speedup:.1f} times faster than the default "
                       f"{default['shipped']} (a second bundle ships when one is at least "
                       f"{FAST_MIN_SPEEDUP} times faster)")
        chosen["fast"] = fast
    return chosen


def write_choice(candidates: dict[str, dict], metas: dict[str, dict], chosen: dict, name: str,
                 out: Path, version: str, role: str) -> dict:
    """Write the bundle of the candidate `chosen[role]` picked: its TFLite file, thresholds and why."""
    pick = chosen[role]["shipped"]
    entry = candidates[pick]
    meta = dict(metas[entry["input_size"]])
    work = Path(meta.pop("work"))
    meta.update(
        name=name, version=version, variant=entry["variant"],
        label_rule={**meta["label_rule"], "thresholds": entry["thresholds"]},
        metrics=entry["metrics"],
        front={"role": role, "shipped": pick, "default_rule": RULE, "why": chosen[role]["why"],
               "tolerance": chosen[role]["tolerance"],
               "best": chosen[role]["best"], "on_front": chosen["front"],
               "default": chosen["default"]["shipped"], "fast": chosen.get("fast", {}).get("shipped"),
               "timing": "each variant timed again side by side in one process: the best of 3 "
                         "interleaved rounds of the median of 40 single-poster invokes, one thread",
               "cpu": chosen["cpu"],
               "candidates": {n: _brief(c, n in chosen["front"]) for n, c in candidates.items()}})
    # The run's own choice among its variants gave way to the front's: keep only its measurements.
    meta["comparison"] = {key: meta["comparison"][key] for key in ("reference", "keras", "variants")}
    for variant, ms in ((c["variant"], c["ms_per_poster_1_core"]) for c in candidates.values()
                        if c["input_size"] == entry["input_size"]):
        meta["comparison"]["variants"][variant]["ms_per_poster_1_core"] = ms
    tflite = (Path(entry["folder"]) / "model.tflite").read_bytes()
    shutil.rmtree(out, ignore_errors=True)
    write_bundle(out, tflite, meta)
    scores = np.load(Path(entry["folder"]) / "validation_scores.npy")
    with np.load(work / "validation_scores.npz") as stored:  # the run's labels, same posters and order
        labels = stored["labels"]
    np.savez(work / f"front_scores_{out.name}.npz", labels=labels, scores=scores)
    log.info("%s: %s", out, chosen[role]["why"])
    return meta


def _brief(entry: dict, front: bool) -> dict:
    return {"input_size": entry["input_size"], "variant": entry["variant"], "on_front": front,
            "ms_per_poster_1_core": entry["ms_per_poster_1_core"], "ms_at_training": entry["ms_at_training"],
            "size_bytes": entry["size_bytes"], **{k: entry["metrics"][k] for k in HEADLINE},
            "labels_agree_with_keras": round(entry["vs_keras"]["labels_agree"], 4),
            "max_abs_score_diff_vs_keras": round(entry["vs_keras"]["max_abs_score_diff"], 4)}


def ship(runs: list[Path], out: Path, version: str, fast_out: Path | None = None,
         seed: Path | None = None) -> dict:
    """Gather, time, choose and write the default bundle (and the fast one when earned), with cards."""
    from posterq.training.card import write_card

    candidates, metas = gather(runs)
    retime(candidates)
    chosen = {**choose(candidates), "cpu": cpu_facts()}  # the CPU retime measured on
    written = {}
    targets = [("default", Path(out))]
    if "fast" in chosen and fast_out is not None:
        targets.append(("fast", Path(fast_out)))
    elif fast_out is not None:
        shutil.rmtree(fast_out, ignore_errors=True)  # the front no longer earns a second bundle
    for role, folder in targets:
        meta = write_choice(candidates, metas, chosen, folder.name, folder, version, role)
        work = Path(metas[candidates[chosen[role]["shipped"]]["input_size"]]["work"])
        write_card(folder, work, seed, scores=work / f"front_scores_{folder.name}.npz")
        written[role] = {"bundle": str(folder), "shipped": meta["front"]["shipped"]}
    return {"chosen": {role: chosen[role]["shipped"] for role in ("default", "fast") if role in chosen},
            "front": chosen["front"], "written": written, "cpu_note": cpu_note(chosen["cpu"])}
