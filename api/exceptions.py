"""Errors the API answers with: each carries an HTTP status, a stable code and a message."""

from posterq.exceptions import PosterqError


class ApiError(PosterqError):
    """Root of the API's errors; `status` is the HTTP status it is answered with."""

    code = "bad_request"
    status = 400

    def __init_subclass__(cls, status: int | None = None, **kwargs):
        # As PosterqError's code, the status stands in the class's header.
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status

    def __init__(self, message: str, code: str | None = None, status: int | None = None):
        super().__init__(message, code)
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    """The request is malformed or names something invalid (400)."""


class Unauthorized(ApiError, code="unauthorized", status=401):
    """No API key, or one that is not valid, where the service has keys (401)."""


class Forbidden(ApiError, code="forbidden", status=403):
    """The request asks for something outside what the service may read (403)."""


class Conflict(ApiError, code="conflict", status=409):
    """The request would destroy something that exists: an output file without "overwrite" (409)."""


class ModelUnavailable(ApiError, code="model_unavailable", status=409):
    """A job names a model that no live worker holds (409); `held` lists the models live workers hold.

    Code unknown_model: it asked to wait for a model no worker announced lately nor the operator listed.
    """

    def __init__(self, message: str, held: list[str], code: str | None = None):
        super().__init__(message, code)
        self.held = held


class NotFound(ApiError, code="not_found", status=404):
    """No such job, or no such folder (404)."""


class TooLarge(ApiError, code="too_large", status=413):
    """The request is over one of the configured limits (413)."""

