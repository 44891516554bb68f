"""Errors of the training package; each carries a stable code and a message, like the core's."""

from posterq.exceptions import PosterqError


class TrainingError(PosterqError):
    """Root of the training package's errors."""

    code = "training_error"


class DatasetError(TrainingError):
    """A dataset that cannot be read.

    Codes: missing_file, unknown_genre, empty_dataset, bad_layout, bad_record.
    """

    code = "bad_dataset"
