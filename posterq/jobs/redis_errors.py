"""The job store's Redis errors as its callers tell them apart, so that they import no Redis client."""

import redis

from posterq.exceptions import DatabaseUnavailable

#: Any error of the job store's Redis: a command it refused (out of memory, read-only) or Redis lost.
RedisError = redis.RedisError
#: Redis cannot be reached or did not answer in time, as opposed to a command it refused.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


def refused_for_memory(exc: BaseException) -> bool:
    """True for a command Redis refused because it is over its maxmemory (OOM), in a script or not."""
    return isinstance(exc, redis.OutOfMemoryError) or (
        isinstance(exc, redis.ResponseError) and "used memory > 'maxmemory'" in str(exc))


def transient(exc: BaseException) -> bool:
    """True for an error that passes on its own: the database or Redis down, or Redis full."""
    passing = (DatabaseUnavailable, *REDIS_DOWN, redis.OutOfMemoryError)
    return isinstance(exc, passing) or (isinstance(exc, redis.ResponseError) and "maxmemory" in str(exc))


def refused(exc: BaseException) -> bool:
    """True for a command Redis answered with an error (full, or a script's error), not one it never got."""
    return isinstance(exc, redis.ResponseError)
