"""The training pipeline: data, split, fit, per-genre thresholds, TFLite variants, bundle and card.

    posterq train --data ../shared/datasets/movie-posters --arch effnet-lite0 \
        --out models/effnet-lite0-posters
    posterq train --data ../shared/datasets/movie-posters --arch seed --out runs/seed

Work files (decoded posters, cached activations, backups for resuming) go under --work
(default runs/<name of --out>); the bundle folder receives only what ships.
"""

import json
import logging
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from posterq import __version__
from posterq.classifier import Classifier
from posterq.config import available_cores
from posterq.cpu import cpu_facts
from posterq.genres import GENRES
from posterq.training.bundle_io import write_bundle
from posterq.training.callbacks import TimeBudget
from posterq.training.datasets import load_dataset
from posterq.training.metrics import evaluate_scores, label_matrix, label_prior_baseline, tune_thresholds
from posterq.training.pixels import poster_pixels
from posterq.training.shipping import choose_variant
from posterq.training.split import DEFAULT_SEED, split

log = logging.getLogger(__name__)


@dataclass
class Recipe:
    """Everything that decides a training run; it is written into the bundle."""

    arch: str
    input_size: tuple[int, int]
    epochs: int
    batch_size: int
    learning_rate: float
    cut_block: int | None = None
    probe_strength: float | None = None
    taps: tuple[int, ...] = ()  # blocks whose pooled outputs also feed the genre head
    top_k: int = 3
    seed: int = DEFAULT_SEED
    val_fraction: float = 0.2
    variants: tuple[str, ...] = ("float32",)
    # Training posters int8-full is calibrated on; each further count is exported as its own
    # variant (int8-full-<count>) so the report shows what the calibration size changes.
    calibration: tuple[int, ...] = (1000, 200)
    notes: list[str] = field(default_factory=list)


# Blocks whose pooled outputs feed the genre head beside the last features: the ends of stages 3
# and 5 and every block after them. Genre lives partly in colour, texture and layout that the
# last, ImageNet-object features pool away; on frozen features these taps raised a linear probe's
# validation macro ROC-AUC and AP (the figures: docs/model.md).
TAPS = (4, 10, 11, 12, 13, 14, 15)

RECIPES = {
    # Input 576x384 (height x width) keeps the posters' 2:3 portrait shape; the recipe's probe
    # scored best there of the sizes training/probe_resolution.py tried (its figures:
    # bench/results/probe_resolution.json; the shape's: training/input_shape.py).
    "effnet-lite0": Recipe("effnet-lite0", (576, 384), epochs=3, batch_size=32, learning_rate=1e-4,
                           cut_block=4, probe_strength=3e-4, taps=TAPS,
                           variants=("float32", "float16", "int8-dynamic", "int8-full"),
                           notes=["blocks 0-4 frozen at ImageNet weights, their activations cached",
                                  ("genre head on the pooled 1280 head features and the pooled outputs "
                                   f"of blocks {', '.join(map(str, TAPS))}"),
                                  ("genre head first fitted alone: L2 logistic regression (C=3e-4) "
                                   "on standardized frozen features"),
                                  "then blocks 5-15, head conv and genre head fine-tuned; batch norm frozen",
                                  ("augmentation: horizontal mirror; loss: binary cross-entropy "
                                   "with positives weighted sqrt(negatives / positives) per genre (1 to 10)"),
                                  ("AdamW, cosine decay; kept: the probe or the epoch with the best "
                                   "validation macro ROC-AUC + macro AP")]),
    "seed": Recipe("seed", (350, 350), epochs=5, batch_size=32, learning_rate=1e-3,
                   notes=["the original project's network and recipe, unchanged"]),
}


def train(data, arch: str = "effnet-lite0", out="models/effnet-lite0-posters", work=None, epochs=None,
          input_size: tuple[int, int] | None = None,
          max_minutes: float | None = None, restart: bool = False, name: str | None = None,
          version: str = "1.0.0") -> dict:
    """Train one architecture end to end and write its bundle to `out`; return the bundle's metadata."""
    recipe = replace(RECIPES[arch])
    if epochs is not None:
        recipe.epochs = epochs
    if input_size is not None:
        recipe.input_size = tuple(input_size)
    out = Path(out)
    work = Path(work) if work else Path("runs") / out.name
    if restart and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    dataset = load_dataset(data)
    train_pixels, train_labels, val_pixels, val_labels = decoded_split(dataset, recipe, work.parent / "cache")
    budget = TimeBudget(max_minutes)

    if arch == "seed":
        from posterq.training.seed_train import fit_seed

        model, _ = fit_seed(train_pixels, train_labels, val_pixels, val_labels, work, recipe.epochs,
                            recipe.batch_size, recipe.learning_rate, recipe.seed, budget=budget)
    else:
        from posterq.training.effnet_train import assemble, fit_upper, lower_outputs, split_models

        lower, upper, state = split_models(recipe.input_size, recipe.cut_block, recipe.taps)
        acts = _cached(work / "lower_outputs.npz",
                       lambda: _numbered(lower_outputs(lower, train_pixels, val_pixels)))
        inputs = {part: [acts[f"{part}_{i}"] for i in range(len(lower.outputs))]
                  for part in ("train", "mirror", "val")}
        fit_upper(upper, inputs["train"], inputs["mirror"], train_labels, inputs["val"], val_labels, work,
                  recipe.epochs, recipe.batch_size, recipe.learning_rate, recipe.seed, recipe.probe_strength,
                  budget=budget)
        model = assemble(recipe.input_size, upper, state, recipe.taps)
    train_seconds = time.time() - started

    keras_scores = model.predict(val_pixels.astype(np.float32), batch_size=32, verbose=0)
    report, shipped_scores = _compare_variants(model, recipe, keras_scores, val_pixels, val_labels,
                                               train_pixels, work)
    shipped = report["shipped"]
    baseline = label_prior_baseline(train_labels, len(val_labels))
    meta = {
        "name": name or out.name,
        "version": version,
        "architecture": arch,
        "input": {"height": recipe.input_size[0], "width": recipe.input_size[1], "channels": 3,
                  "layout": "NHWC", "dtype": "float32", "range": [0, 255]},
        "preprocessing": {"function": "posterq.imaging.preprocess", "decode": "posterq.imaging.decode",
                          "resize": "bilinear, squashed to the input size",
                          "normalization": "inside the model"},
        "genres": list(GENRES),
        "label_rule": {"thresholds": report["variants"][shipped]["thresholds"], "top_k": recipe.top_k,
                       "min_labels": 1, "tuned_on": "validation split, per-genre F1 (rare genres share one)"},
        "variant": shipped,
        "training": {
            "data": {"path": str(data), "layout": dataset.layout, "posters": len(dataset),
                     "skipped": dataset.skipped, "train": len(train_labels), "validation": len(val_labels),
                     "split": f"iterative stratification, seed {recipe.seed}, "
                              f"{recipe.val_fraction:.0%} validation"},
            "recipe": {**asdict(recipe), "input_size": list(recipe.input_size), "taps": list(recipe.taps)},
            "seconds": round(train_seconds, 1),
            "stopped_early": None if budget.stopped_at is None else
            f"time budget of {max_minutes} min spent after {budget.stopped_at} steps "
            f"(the recipe asks for {recipe.epochs} epochs)",
            "machine": f"{platform.machine()}, {available_cores()} cores",
            "cpu": cpu_facts(),  # the variants' timings and the training time depend on it
            "posterq": __version__,
        },
        "metrics": report["variants"][shipped]["metrics"],
        "baseline_metrics": _summary(evaluate_scores(val_labels, baseline, label_matrix(
            baseline, tune_thresholds(val_labels, baseline), recipe.top_k))),
        "comparison": report,
    }
    meta["training"]["total_seconds"] = round(time.time() - started, 1)
    tflite = (work / "variants" / shipped / "model.tflite").read_bytes()
    write_bundle(out, tflite, meta)
    np.savez(work / "validation_scores.npz", labels=val_labels, scores=shipped_scores)
    (work / "model.json").write_text(json.dumps(meta, indent=2))
    log.info("bundle written to %s (%s, %.0f s)", out, shipped, time.time() - started)
    return meta


def decoded_split(dataset, recipe: Recipe, cache: Path):
    """Split `dataset` as the recipe does and decode both parts (cached in `cache`).

    Returns (train_pixels, train_labels, val_pixels, val_labels); posters that fail to decode are left out.
    """
    train_set, val_set = split(dataset, recipe.val_fraction, recipe.seed)
    log.info("%d posters: %d train, %d validation", len(dataset), len(train_set), len(val_set))
    train_pixels, train_ok = poster_pixels([e.path for e in train_set.examples], recipe.input_size, cache)
    val_pixels, val_ok = poster_pixels([e.path for e in val_set.examples], recipe.input_size, cache)
    return train_pixels[train_ok], train_set.labels()[train_ok], val_pixels[val_ok], val_set.labels()[val_ok]


def _compare_variants(model, recipe, keras_scores, val_pixels, val_labels, train_pixels, work: Path):
    """Export each variant to work/variants, run it through posterq's Classifier, measure it against Keras.

    Returns the report and the validation scores of the variant chosen to ship.
    """
    from posterq.training.export import agreement, milliseconds_per_poster, to_tflite

    keras_thresholds = tune_thresholds(val_labels, keras_scores)
    keras_labels = label_matrix(keras_scores, keras_thresholds, recipe.top_k)
    report = {"reference": "keras", "keras": {"metrics": _summary(evaluate_scores(
        val_labels, keras_scores, keras_labels, thresholds=keras_thresholds))}, "variants": {}}
    all_scores = {}
    for variant, kind, calibration in _variant_plan(recipe, train_pixels):
        started = time.time()
        tflite = to_tflite(model, kind, calibration)
        folder = work / "variants" / variant
        shutil.rmtree(folder, ignore_errors=True)
        meta = {"name": variant, "version": "candidate", "architecture": recipe.arch,
                "input": {"height": recipe.input_size[0], "width": recipe.input_size[1]},
                "preprocessing": {}, "genres": list(GENRES),
                "label_rule": {"thresholds": [0.5] * len(GENRES), "top_k": recipe.top_k}}
        write_bundle(folder, tflite, meta)
        classifier = Classifier(folder, num_threads=None)
        scores = np.concatenate([classifier.predict(val_pixels[i:i + 32].astype(np.float32))
                                 for i in range(0, len(val_pixels), 32)])
        thresholds = tune_thresholds(val_labels, scores)
        labels = label_matrix(scores, thresholds, recipe.top_k)
        one_core = Classifier(folder, num_threads=1)
        entry = {
            "size_bytes": len(tflite),
            "ms_per_poster_1_core": round(
                milliseconds_per_poster(one_core, val_pixels.astype(np.float32)), 2),
            "thresholds": [round(float(t), 4) for t in thresholds],
            "metrics": _summary(evaluate_scores(val_labels, scores, labels, thresholds=thresholds)),
            "vs_keras": agreement(keras_scores, scores,
                                  label_matrix(keras_scores, thresholds, recipe.top_k), labels),
        }
        report["variants"][variant] = entry
        all_scores[variant] = scores
        np.save(folder / "validation_scores.npy", scores)  # for comparing runs of other input sizes
        log.info("%s: %s (%.0f s)", variant, {k: entry[k] for k in ("size_bytes", "ms_per_poster_1_core")},
                 time.time() - started)
    report.update(choose_variant(report["variants"]))
    return report, all_scores[report["shipped"]]


def _variant_plan(recipe: Recipe, train_pixels: np.ndarray):
    """Yield (variant name, export kind, calibration posters or None) for every variant to export."""
    rng = np.random.default_rng(recipe.seed)
    order = rng.permutation(len(train_pixels))  # the first N of one order: smaller sets nest in larger
    for variant in recipe.variants:
        if variant != "int8-full":
            yield variant, variant, None
            continue
        for index, count in enumerate(recipe.calibration):
            name = variant if index == 0 else f"{variant}-{count}"
            yield name, variant, train_pixels[np.sort(order[:count])]


def _summary(metrics: dict) -> dict:
    """The headline metrics and per-genre figures, rounded for reading."""
    keys = ("macro_roc_auc", "macro_average_precision", "micro_f1", "samples_f1", "macro_f1", "n_posters")
    summary = {key: (round(metrics[key], 4) if isinstance(metrics[key], float) else metrics[key])
               for key in keys}
    summary["genres_scored"] = metrics["genres_scored"]
    summary["per_genre"] = metrics["per_genre"]
    return summary


def _numbered(outputs: dict) -> dict:
    """Flatten {part: [array per lower output]} into {part_index: array} for an .npz file."""
    return {f"{part}_{index}": array
            for part, arrays in outputs.items() for index, array in enumerate(arrays)}


def _cached(path: Path, compute) -> dict:
    """Load arrays saved by an earlier, interrupted run, or compute and save them."""
    if path.exists():
        with np.load(path) as stored:
            return {key: stored[key] for key in stored.files}
    arrays = compute()
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, **arrays)
    partial.replace(path)
    return arrays
