"""The label rule: per-genre thresholds, at least one genre, at most k."""

import numpy as np


def assign(scores: np.ndarray, thresholds: np.ndarray, top_k: int) -> list[int]:
    """Return the genre indices one poster gets, best first: over threshold, at least 1, at most k."""
    order = np.argsort(-scores, kind="stable")
    chosen = [int(i) for i in order if scores[i] >= thresholds[i]][:top_k]
    # A poster always gets a genre: with none over its threshold, the highest score wins.
    return chosen or [int(order[0])]


def assign_names(scores: np.ndarray, thresholds: np.ndarray, top_k: int, genres) -> list[str]:
    """Return the genre names one poster gets (see assign)."""
    return [genres[i] for i in assign(scores, thresholds, top_k)]
