"""Tests of posterq.training.metrics: ranking metrics, threshold tuning, the label rule and the baseline."""

import numpy as np
import pytest

from posterq.genres import GENRES
from posterq.training.metrics import evaluate_scores, label_matrix, label_prior_baseline, tune_thresholds


def truth(n: int = 60, seed: int = 0) -> np.ndarray:
    """Random 0/1 labels where every genre has positives and negatives, except News (2 positives)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(GENRES))) < 0.3).astype(np.uint8)
    y[:, GENRES.index("News")] = 0
    y[:2, GENRES.index("News")] = 1
    return y


def test_perfect_scores_give_auc_one():
    y = truth()
    scores = np.where(y == 1, 0.9, 0.1).astype(np.float32)
    result = evaluate_scores(y, scores, y, GENRES, min_positives=5)
    assert result["macro_roc_auc"] == pytest.approx(1.0)
    assert result["macro_average_precision"] == pytest.approx(1.0)
    assert result["micro_f1"] == pytest.approx(1.0) and result["macro_f1"] == pytest.approx(1.0)
    assert result["n_posters"] == len(y)
    assert "News" not in result["genres_scored"] and "Drama" in result["genres_scored"]
    assert result["per_genre"]["News"]["positives"] == 2
    assert result["per_genre"]["News"]["roc_auc"] is None
    assert result["per_genre"]["Drama"]["roc_auc"] == pytest.approx(1.0)
    assert "threshold" not in result["per_genre"]["Drama"]
    with_thresholds = evaluate_scores(y, scores, y, GENRES, thresholds=np.full(24, 0.4))
    assert with_thresholds["per_genre"]["Drama"]["threshold"] == pytest.approx(0.4)


def test_label_prior_baseline_has_auc_one_half():
    y_train, y_val = truth(80, seed=1), truth(40, seed=2)
    scores = label_prior_baseline(y_train, len(y_val))
    assert scores.shape == y_val.shape
    assert scores[0, 0] == pytest.approx(y_train[:, 0].mean())
    predicted = label_matrix(scores, np.full(24, 0.5), top_k=3)
    result = evaluate_scores(y_val, scores, predicted, GENRES)
    assert result["macro_roc_auc"] == pytest.approx(0.5)


def test_tune_thresholds_finds_the_gap():
    rng = np.random.default_rng(3)
    n = 200
    y = np.zeros((n, 24), dtype=np.uint8)
    y[:50, 0] = 1  # Action: 50 positives scored 0.55-0.95, negatives 0.0-0.35
    scores = rng.random((n, 24)).astype(np.float32) * 0.3
    scores[:50, 0] = 0.55 + rng.random(50) * 0.4
    scores[50:, 0] = rng.random(150) * 0.35
    y[:3, 1] = 1  # Adventure: 3 positives, too few for a threshold of its own
    thresholds = tune_thresholds(y, scores, min_positives=10)
    assert thresholds.shape == (24,)
    assert 0.35 < thresholds[0] <= 0.55
    # Every rare genre shares one threshold.
    assert len(set(thresholds[1:].tolist())) == 1
    # With nothing to learn from, the default is used.
    empty = tune_thresholds(np.zeros((10, 24)), np.full((10, 24), 0.2), default=0.7)
    assert np.allclose(empty, 0.7)


def test_label_matrix_honours_at_least_one_and_at_most_k():
    scores = np.array([
        [0.1] * 24,  # nothing over threshold: the best genre anyway
        [0.9] * 5 + [0.1] * 19,  # five over threshold: only k of them
    ], dtype=np.float32)
    scores[0, 7] = 0.3
    labels = label_matrix(scores, np.full(24, 0.5), top_k=3)
    assert labels.dtype == np.uint8 and labels.shape == (2, 24)
    assert labels[0].sum() == 1 and labels[0, 7] == 1
    assert labels[1].sum() == 3 and labels[1, :5].sum() == 3


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        evaluate_scores(np.zeros((3, 24)), np.zeros((3, 23)), np.zeros((3, 24)), GENRES)
