"""The job store's Redis errors as its callers tell them apart, so that they import no Redis client."""

import redis

#: Any error of the job store's Redis: a command it refused (out of memory, read-only) or Redis lost.
RedisError = redis.RedisError
#: Redis cannot be reached or did not answer in time, as opposed to a command it refused.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
