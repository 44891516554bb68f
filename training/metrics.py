"""Multi-label metrics, threshold tuning and the label-prior baseline (NumPy and scikit-learn only)."""

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_recall_fscore_support, roc_auc_score

from posterq.genres import GENRES
from posterq.label_rule import assign

DEFAULT_GRID = np.linspace(0.02, 0.9, 45)


def evaluate_scores(y_true, scores, predicted, genres=GENRES, min_positives: int = 5,
                    thresholds=None) -> dict:
    """Score a model's outputs against the truth: ranking metrics, F1 of the labels, per genre.

    ROC-AUC, average precision and macro F1 are averaged over `genres_scored`: the genres with at
    least `min_positives` positives (and one negative), since a genre with two positives yields
    a number that is mostly noise. Micro and samples F1 count every genre.
    """
    y_true, scores, predicted = _as_matrices(y_true, scores, predicted, genres)
    positives = y_true.sum(axis=0)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, predicted, average=None, labels=range(len(genres)), zero_division=0
    )
    per_genre, scored = {}, []
    for j, genre in enumerate(genres):
        entry = {"positives": int(positives[j]), "predicted": int(predicted[:, j].sum()),
                 "roc_auc": None, "average_precision": None, "precision": float(precision[j]),
                 "recall": float(recall[j]), "f1": float(f1[j])}
        if positives[j] >= max(min_positives, 1) and positives[j] < len(y_true):
            entry["roc_auc"] = float(roc_auc_score(y_true[:, j], scores[:, j]))
            entry["average_precision"] = float(average_precision_score(y_true[:, j], scores[:, j]))
            scored.append(j)
        if thresholds is not None:
            entry["threshold"] = float(thresholds[j])
        per_genre[genre] = entry
    return {
        "n_posters": len(y_true),
        "genres_scored": [genres[j] for j in scored],
        "macro_roc_auc": _mean(per_genre[genres[j]]["roc_auc"] for j in scored),
        "macro_average_precision": _mean(per_genre[genres[j]]["average_precision"] for j in scored),
        "micro_f1": float(f1_score(y_true, predicted, average="micro", zero_division=0)),
        "samples_f1": float(f1_score(y_true, predicted, average="samples", zero_division=0)),
        "macro_f1": _mean(float(f1[j]) for j in scored),
        "per_genre": per_genre,
    }


def label_matrix(scores, thresholds, top_k: int) -> np.ndarray:
    """Apply the label rule (posterq.label_rule.assign) to every poster's scores: (N, G) uint8 0/1."""
    scores = np.asarray(scores, dtype=np.float32)
    thresholds = np.asarray(thresholds, dtype=np.float32)
    labels = np.zeros(scores.shape, dtype=np.uint8)
    for i, poster in enumerate(scores):
        labels[i, assign(poster, thresholds, top_k)] = 1
    return labels


def tune_thresholds(y_true, scores, min_positives: int = 10, default: float | None = None,
                    grid=DEFAULT_GRID) -> np.ndarray:
    """Choose per-genre thresholds on validation data that maximize F1.

    A genre with at least `min_positives` positives gets its own F1-best threshold. The rest share
    one threshold, chosen for micro-F1 over them together, so that a genre with three examples
    does not get a threshold fitted to those three. When the shared group has no positive at all
    there is nothing to fit: it gets `default` (0.5 when None).
    """
    y_true = np.asarray(y_true).astype(bool)
    scores = np.asarray(scores, dtype=np.float32)
    grid = np.asarray(grid, dtype=np.float32)
    if y_true.shape != scores.shape or y_true.ndim != 2:
        raise ValueError(f"y_true {y_true.shape} and scores {scores.shape} must be the same (N, G) shape")
    # counts[g] for each grid threshold: true positives, predicted positives; (G, T) each.
    over = scores[:, :, None] >= grid[None, None, :]
    true_pos = (over & y_true[:, :, None]).sum(axis=0)
    predicted = over.sum(axis=0)
    positives = y_true.sum(axis=0)
    thresholds = np.empty(scores.shape[1], dtype=np.float32)
    common = positives >= max(min_positives, 1)
    for j in np.flatnonzero(common):
        thresholds[j] = grid[_best(_f1(true_pos[j], predicted[j], positives[j]))]
    rare = ~common
    if rare.any():
        pooled_positives = positives[rare].sum()
        if pooled_positives == 0:
            shared = 0.5 if default is None else default
        else:
            f1 = _f1(true_pos[rare].sum(axis=0), predicted[rare].sum(axis=0), pooled_positives)
            shared = grid[_best(f1)]
        thresholds[rare] = shared
    return thresholds


def label_prior_baseline(train_labels, n: int) -> np.ndarray:
    """Score n posters with each genre's training prevalence: the floor any model must beat."""
    prior = np.asarray(train_labels, dtype=np.float64).mean(axis=0)
    return np.tile(prior.astype(np.float32), (n, 1))


def _as_matrices(y_true, scores, predicted, genres):
    y_true = np.asarray(y_true).astype(np.uint8)
    scores = np.asarray(scores, dtype=np.float64)
    predicted = np.asarray(predicted).astype(np.uint8)
    shape = (len(y_true), len(genres))
    for name, value in (("y_true", y_true), ("scores", scores), ("predicted", predicted)):
        if value.shape != shape:
            raise ValueError(f"{name} has shape {value.shape}, expected {shape}")
    return y_true, scores, predicted


def _f1(true_pos, predicted, positives) -> np.ndarray:
    # F1 = 2TP / (predicted positives + actual positives); 0 where both are 0.
    denominator = predicted + positives
    return np.divide(2.0 * true_pos, denominator, out=np.zeros(true_pos.shape), where=denominator > 0)


def _best(f1: np.ndarray) -> int:
    # F1 is often flat across several thresholds; the middle of the best ones is the least fragile.
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return int(best[len(best) // 2])


def _mean(values) -> float | None:
    values = [value for value in values if value is not None]
    return float(np.mean(values)) if values else None
