"""posterq.label_rule: over threshold, at least one genre, at most k, best first."""

import numpy as np

from posterq.label_rule import assign, assign_names


def test_over_threshold_best_first():
    scores = np.array([0.6, 0.1, 0.9, 0.7])
    assert assign(scores, np.full(4, 0.5), 3) == [2, 3, 0]


def test_at_most_k():
    scores = np.array([0.6, 0.8, 0.9, 0.7])
    assert assign(scores, np.full(4, 0.5), 2) == [2, 1]


def test_at_least_one_when_none_passes():
    scores = np.array([0.2, 0.4, 0.3])
    assert assign(scores, np.full(3, 0.5), 3) == [1]


def test_per_genre_thresholds():
    scores = np.array([0.3, 0.6, 0.35])
    thresholds = np.array([0.25, 0.7, 0.3])
    # Genre 1 has the best score but is under its own threshold.
    assert assign(scores, thresholds, 3) == [2, 0]


def test_threshold_is_inclusive():
    assert assign(np.array([0.5, 0.1]), np.array([0.5, 0.5]), 3) == [0]


def test_names():
    scores = np.array([0.1, 0.9, 0.6])
    assert assign_names(scores, np.full(3, 0.5), 3, ("Action", "Drama", "War")) == ["Drama", "War"]
