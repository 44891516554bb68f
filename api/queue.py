"""A new job's batch tokens, sent through the app's broker (posterq.jobs.broker); a broker that
cannot take them is answered 503."""

import logging

import redis
from kombu.exceptions import KombuError

from api import context
from api.exceptions import ApiError
from posterq.jobs.broker import tokens_for

log = logging.getLogger(__name__)


def enqueue(posters: int) -> int:
    """Send the tokens for a job's posters; return how many were sent (503 ApiError if it cannot)."""
    broker = context.broker()
    count = tokens_for(posters, broker.settings.batch_size)
    try:
        broker.send(count)
    except (KombuError, redis.RedisError, OSError) as exc:
        # Tokens already sent find the job's refs gone (Jobs.create discards them) and end at once.
        log.error("cannot send batch tasks: %s", exc)
        raise ApiError("the queue cannot take the job now; try again later", "queue_unavailable",
                       503) from exc
    return count
