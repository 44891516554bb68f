"""Errors of the training package; each carries a stable code and a message, like the core's."""

from posterq.exceptions import PosterqError


class TrainingError(PosterqError, code="training_error"):
    """Root of the training package's errors."""


class DatasetError(TrainingError, code="bad_dataset"):
    """A dataset that cannot be read.

    Codes: missing_file, unknown_genre, empty_dataset, bad_layout, bad_record.
    """
