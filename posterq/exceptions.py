"""Errors of the posterq core; every one carries a stable code and a message."""


class PosterqError(Exception):
    """Root of posterq's errors: `code` is stable, `message` is for people."""

    code = "error"

    def __init_subclass__(cls, code: str | None = None, **kwargs):
        # The code stands in the class header (`class BundleError(PosterqError, code="bad_bundle")`), so
        # an error class needs no body but its docstring.
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def as_dict(self) -> dict:
        """Return the error as the JSON shape used everywhere: {code, message}."""
        return {"code": self.code, "message": self.message}


class ImageError(PosterqError, code="unreadable"):
    """A file that cannot become a model input.

    Codes: empty, not_an_image, unsupported_format, too_large, truncated, corrupt (decodes
    badly), unreadable (the file itself could not be read).
    """


class BundleError(PosterqError, code="bad_bundle"):
    """A model bundle that is missing, malformed, or does not match its metadata."""


class DatabaseUnavailable(PosterqError, code="database_unavailable"):
    """The results database cannot be reached now: new jobs wait (503), workers keep and retry."""


class SubmissionExists(PosterqError, code="submission_in_progress"):
    """A submission under an Idempotency-Key that another request is still making: try again shortly."""


class IdempotencyKeyReused(PosterqError, code="idempotency_key_reused"):
    """An Idempotency-Key sent again with another request than the one that made its job (422)."""


class TooManyPosters(PosterqError, code="too_many_posters"):
    """A job with more posters than its key (or the service) may ever have queued: it can never fit (413)."""


class PostersGone(PosterqError, code="posters_gone"):
    """A retry or rerun names posters whose bytes the service no longer keeps."""


class QueueFull(PosterqError, code="queue_full"):
    """Admitting these posters would pass a queue limit: the key's own (`key_queue_full`) or the service's.

    `queued` is what is queued now (the key's, or everyone's), `limit` the limit passed, `excess`
    how many posters must finish before the submission fits, `wanted` the posters it holds.
    """

    def __init__(self, message: str, code: str, queued: int, limit: int, wanted: int):
        super().__init__(message, code)
        self.queued, self.limit, self.wanted = queued, limit, wanted
        self.excess = max(1, queued + wanted - limit)


class OutputError(PosterqError, code="output_write_failed"):
    """A job's output file that cannot be (or was not) written; `permanent` when trying again cannot help.

    Codes: output_exists, output_name_too_long, output_path_too_long, output_is_directory,
    output_folder_missing, output_folder_changed, output_not_permitted, output_write_failed.
    """

    def __init__(self, message: str, code: str | None = None, permanent: bool = True):
        super().__init__(message, code)
        self.permanent = permanent
