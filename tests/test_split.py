"""Tests of posterq.training.split: reproducible, disjoint, complete, and stratified down to rare genres."""

from pathlib import Path

import numpy as np
import pytest

from posterq.genres import GENRES
from posterq.training.datasets import Dataset, Example
from posterq.training.split import split


def synthetic(n: int = 300, seed: int = 0) -> Dataset:
    """A dataset with common genres, a genre with exactly two examples, and one with one."""
    rng = np.random.default_rng(seed)
    common = ["Drama", "Comedy", "Action", "Thriller", "Romance"]
    examples = []
    for i in range(n):
        genres = set(rng.choice(common, size=rng.integers(1, 3), replace=False))
        if i in (17, 230):
            genres.add("Western")
        if i == 99:
            genres.add("News")
        examples.append(Example(Path(f"/posters/{i:04d}.jpg"), tuple(g for g in GENRES if g in genres)))
    return Dataset(Path("/posters"), "csv", examples)


def paths(data: Dataset) -> list[Path]:
    return [example.path for example in data.examples]


def test_split_is_reproducible_disjoint_and_complete():
    data = synthetic()
    train, val = split(data, 0.2, seed=7)
    again_train, again_val = split(data, 0.2, seed=7)
    assert paths(train) == paths(again_train) and paths(val) == paths(again_val)
    assert not set(paths(train)) & set(paths(val))
    assert sorted(paths(train) + paths(val)) == paths(data)
    # Stratification fixes each genre's count; the part sizes may drift a little from the fraction.
    assert abs(len(val) - 0.2 * len(data)) <= 0.1 * 0.2 * len(data)
    other_train, _ = split(data, 0.2, seed=8)
    assert paths(other_train) != paths(train)


def test_each_genre_is_split_in_proportion():
    data = synthetic()
    train, val = split(data, 0.25)
    for genre in ("Drama", "Comedy", "Action", "Thriller", "Romance"):
        assert abs(val.positives()[genre] - 0.25 * data.positives()[genre]) <= 1
        assert train.positives()[genre] + val.positives()[genre] == data.positives()[genre]


def test_rare_genre_lands_in_both_parts():
    data = synthetic()
    for seed in range(5):
        train, val = split(data, 0.2, seed=seed)
        assert train.positives()["Western"] == 1 and val.positives()["Western"] == 1


def test_bad_fraction():
    with pytest.raises(ValueError):
        split(synthetic(10), 1.0)
