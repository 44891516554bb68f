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
    # Tokens already sent find the job's refs gone (Jobs.create discards them) and end at once.
    _send(lambda: broker.send(count))
    return count


def enqueue_enumeration(job_id: str) -> None:
    """Send the task that lists a directory job's folder (503 ApiError if it cannot)."""
    _send(lambda: context.broker().send_enumeration(job_id))


def _send(send) -> None:
    try:
        send()
    except (KombuError, redis.RedisError, OSError) as exc:
        log.error("cannot send tasks: %s", exc)
        raise ApiError("the queue cannot take the job now; try again later", "queue_unavailable",
                       503) from exc
