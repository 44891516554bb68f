"""Error handlers in one place: every error leaves as JSON {"error": {"code", "message"}}."""

import logging

import redis
from flask import jsonify
from werkzeug.exceptions import HTTPException

from api.exceptions import ApiError
from posterq.exceptions import PosterqError

log = logging.getLogger(__name__)

# Codes for the HTTP errors werkzeug raises itself.
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "request_too_large", 415: "unsupported_media_type"}


def error_response(code: str, message: str, status: int):
    """A JSON error response."""
    return jsonify({"error": {"code": code, "message": message}}), status


def register(app) -> None:
    """Install the handlers on an app."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.code, exc.message, exc.status)

    @app.errorhandler(PosterqError)
    def _posterq_error(exc: PosterqError):
        return error_response(exc.code, exc.message, 400)

    @app.errorhandler(redis.RedisError)
    def _redis_error(exc: redis.RedisError):
        log.error("Redis error: %s", exc)
        return error_response("unavailable", "the job store (Redis) cannot be reached", 503)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"the request is over the limit of {limit} bytes"
        response, status = error_response(_HTTP_CODES.get(status, exc.name.lower().replace(" ", "_")),
                                          message, status)
        if status == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response("internal_error", "an unexpected error happened; see the API log", 500)
