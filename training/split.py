"""A reproducible train/validation split that keeps every genre's share in both parts."""

import numpy as np

from posterq.training.datasets import Dataset

DEFAULT_SEED = 20261129


def split(dataset: Dataset, val_fraction: float = 0.2, seed: int = DEFAULT_SEED) -> tuple[Dataset, Dataset]:
    """Split into (train, val) by multi-label iterative stratification, reproducibly for a seed."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, not {val_fraction}")
    if len(dataset) < 2:
        raise ValueError("a dataset needs at least two examples to be split")
    in_val = _iterative_stratification(dataset.labels().astype(bool), val_fraction,
                                       np.random.default_rng(seed))
    return dataset.subset(np.flatnonzero(~in_val)), dataset.subset(np.flatnonzero(in_val))


def _iterative_stratification(labels: np.ndarray, val_fraction: float, rng) -> np.ndarray:
    """Sechidis et al. (2011) for two parts; return a boolean mask of the validation examples."""
    n = len(labels)
    ratios = np.array([1.0 - val_fraction, val_fraction])
    # Wanted examples per part, overall and per label. Unlike the paper, a label with at least two
    # examples wants at least one in each part, so rare genres can be both learned and checked.
    wanted = ratios * n
    per_label = labels.sum(axis=0)
    wanted_label = np.outer(ratios, per_label)
    few = per_label >= 2
    wanted_label[:, few] = np.maximum(wanted_label[:, few], 1.0)
    part = np.full(n, -1)
    remaining = labels.copy()
    while True:
        counts = remaining.sum(axis=0)
        if not counts.any():
            break
        # The label with the fewest examples left is placed first: it is the hardest to balance.
        rarest = np.flatnonzero(counts == counts[counts > 0].min())
        label = int(rng.choice(rarest))
        for i in rng.permutation(np.flatnonzero(remaining[:, label])):
            best = _best_part(wanted_label[:, label], wanted, rng)
            part[i] = best
            wanted_label[best] -= labels[i]
            wanted[best] -= 1
            remaining[i] = False
    # Examples with no label at all only need the overall proportions kept.
    for i in rng.permutation(np.flatnonzero(part < 0)):
        part[i] = best = _best_part(wanted, wanted, rng)
        wanted[best] -= 1
    return part == 1


def _best_part(first: np.ndarray, second: np.ndarray, rng) -> int:
    # The part that wants this label most; ties go to the part that wants most examples, then by lot.
    candidates = np.flatnonzero(first == first.max())
    if len(candidates) > 1:
        candidates = candidates[second[candidates] == second[candidates].max()]
    return int(rng.choice(candidates))
