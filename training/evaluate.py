"""Evaluate a model bundle on a labelled dataset through the serving Classifier (LiteRT, not Keras).

No TensorFlow here or in what this imports: `posterq evaluate` needs only the `eval` extra.
"""

import logging
import time
from collections import Counter

import numpy as np
import pandas as pd
from tqdm import tqdm

from posterq.config import BATCH_SIZE
from posterq.pool import classify_paths, load_classifier
from posterq.training.datasets import load_dataset
from posterq.training.exceptions import TrainingError
from posterq.training.metrics import evaluate_scores

log = logging.getLogger(__name__)

#: The per-genre table's columns, by their keys in metrics["per_genre"], with their short names.
TABLE_COLUMNS = {"positives": "pos", "predicted": "pred", "roc_auc": "ROC-AUC", "average_precision": "AP",
                 "precision": "prec", "recall": "recall", "f1": "F1", "threshold": "thr"}


def evaluate(data_path, model=None, batch_size: int = BATCH_SIZE, top_k: int | None = None,
             num_threads: int | None = None, progress: bool = True) -> dict:
    """Classify every example of a dataset with a bundle and return its metrics, JSON-ready."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    dataset = load_dataset(data_path)
    classifier = load_classifier(model, num_threads=num_threads)  # without LiteRT's line on stderr
    bundle = classifier.bundle
    top_k = top_k or bundle.top_k
    column = {genre: j for j, genre in enumerate(bundle.genres)}
    truth = dataset.labels(bundle.genres)
    scored, scores, predicted, errors = [], [], [], Counter()  # scored: indices of the examples classified
    started = time.perf_counter()
    with tqdm(total=len(dataset), unit="poster", disable=not progress, desc="evaluate") as bar:
        for start in range(0, len(dataset), batch_size):
            batch = dataset.examples[start:start + batch_size]
            predictions = classify_paths(classifier, [example.path for example in batch], top_k)
            for index, result in enumerate(predictions, start):
                if result.error is not None:
                    errors[result.error.code] += 1
                    log.warning("%s: %s", dataset.examples[index].path, result.error.message)
                    continue
                scored.append(index)
                scores.append([result.scores[genre] for genre in bundle.genres])
                labels = np.zeros(len(bundle.genres), dtype=np.uint8)
                labels[[column[genre] for genre in result.genres]] = 1
                predicted.append(labels)
            bar.update(len(batch))
    seconds = time.perf_counter() - started
    if not scored:
        raise TrainingError(f"no poster of {dataset.root} could be classified ({dict(errors)})", "no_results")
    metrics = evaluate_scores(truth[scored], np.asarray(scores, dtype=np.float32), np.stack(predicted),
                              bundle.genres, thresholds=bundle.thresholds)
    return {
        "model": bundle.identity,
        "data": dataset.summary(),
        "top_k": top_k,
        "n_errors": int(sum(errors.values())),
        "errors": dict(errors),
        "seconds": round(seconds, 2),
        **metrics,
    }


def per_genre_frame(metrics: dict) -> pd.DataFrame:
    """metrics["per_genre"] as a DataFrame indexed by genre; NaN where a genre has too few positives."""
    frame = pd.DataFrame.from_dict(metrics["per_genre"], orient="index").rename_axis("genre")
    counts = ("positives", "predicted")
    return frame.astype({column: "float64" for column in frame.columns if column not in counts})


def format_table(metrics: dict) -> str:
    """Render evaluation metrics as a per-genre table followed by the summary lines."""
    table = per_genre_frame(metrics)
    table = table[[column for column in TABLE_COLUMNS if column in table]].rename(columns=TABLE_COLUMNS)
    lines = [table.to_string(float_format="{:.3f}".format, na_rep="-", index_names=False), ""]
    if "model" in metrics:
        lines.append(f"model    {metrics['model']['name']} {metrics['model']['version']}")
    if "data" in metrics:
        data = metrics["data"]
        lines.append(f"data     {data['path']} ({data['layout']}): {data['n_posters']} posters, "
                     f"{data['skipped']} skipped (missing image), {data.get('no_genre', 0)} without a genre")
    errors = f", {metrics['n_errors']} unreadable" if "n_errors" in metrics else ""
    lines.append(f"scored   {metrics['n_posters']} posters{errors}; "
                 f"{len(metrics['genres_scored'])} genres with enough positives for ranking metrics")
    for key, name in (("macro_roc_auc", "macro ROC-AUC"), ("macro_average_precision", "macro AP"),
                      ("micro_f1", "micro F1"), ("samples_f1", "samples F1"), ("macro_f1", "macro F1")):
        lines.append(f"{name:<18}{_num(metrics[key], 6)}")
    return "\n".join(lines)


def _num(value, width: int, digits: int = 3) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"
