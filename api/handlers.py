"""Error handlers in one place: every error leaves as JSON {"error": {"code", "message"}}."""

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from posterq.api.exceptions import ApiError, ModelUnavailable, Unauthorized
from posterq.exceptions import (
    DatabaseUnavailable,
    IdempotencyKeyReused,
    PosterqError,
    SubmissionExists,
    TooManyPosters,
)
from posterq.jobs.redis_errors import REDIS_DOWN, RedisError

log = logging.getLogger(__name__)

# Codes for the HTTP errors werkzeug raises itself.
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "request_too_large", 415: "unsupported_media_type", 500: "internal_error"}
#: The longest message an error carries: messages quote parts of requests (a path, a zip member's
#: name), and a request can hold megabytes.
MAX_MESSAGE = 300


def status_code(status: int) -> str:
    """The error code of a bare HTTP status: "not_found", "request_uri_too_long", ..."""
    return _HTTP_CODES.get(status) or HTTP_STATUS_CODES.get(status, "error").lower().replace(" ", "_")


def clip(message: str, limit: int = MAX_MESSAGE) -> str:
    """The message, cut to limit characters with a note of its length when longer."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... ({len(message)} characters)"


def error_response(code: str, message: str, status: int, **details):
    """A JSON error response; the message is clipped; details are more fields of the error object."""
    return jsonify({"error": {"code": code, "message": clip(message), **details}}), status


def register(app) -> None:
    """Install the handlers on an app."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        details = {"held": exc.held} if isinstance(exc, ModelUnavailable) else {}
        response, status = error_response(exc.code, exc.message, exc.status, **details)
        if isinstance(exc, Unauthorized):
            # RFC 6750: say which scheme is wanted, and whether the key sent was refused.
            refused = ', error="invalid_token"' if exc.code == "invalid_api_key" else ""
            response.headers["WWW-Authenticate"] = f'Bearer realm="posterq"{refused}'
        return response, status

    @app.errorhandler(PosterqError)
    def _posterq_error(exc: PosterqError):
        if isinstance(exc, SubmissionExists):
            response, status = error_response(exc.code, exc.message, 409)
            response.headers["Retry-After"] = "2"
            return response, status
        if isinstance(exc, IdempotencyKeyReused):
            # The IETF draft's answer to a key reused with another payload: 422, nothing made.
            return error_response(exc.code, exc.message, 422)
        if isinstance(exc, TooManyPosters):
            return error_response(exc.code, exc.message, 413)
        if isinstance(exc, DatabaseUnavailable):
            log.error("%s", exc.message)
            # The driver's words may name the database's host: the client gets the code only.
            response, status = error_response(exc.code, "the results database cannot be reached; "
                                              "try again later", 503)
            response.headers["Retry-After"] = "5"
            return response, status
        return error_response(exc.code, exc.message, 400)

    @app.errorhandler(RedisError)
    def _redis_error(exc: RedisError):
        log.error("Redis error: %s", exc)
        if isinstance(exc, REDIS_DOWN):
            return error_response("unavailable", "the job store (Redis) cannot be reached", 503)
        # Redis answered but refused (out of memory, read-only, a failing disk): not a lost connection.
        return error_response("unavailable", "the job store (Redis) refused a command; see the API log", 503)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"the request is over the limit of {limit} bytes"
        response, status = error_response(status_code(status), message, status)
        if status == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response("internal_error", "an unexpected error happened; see the API log", 500)
