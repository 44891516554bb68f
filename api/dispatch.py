"""A new job's batch tokens, sent through the app's broker (posterq.jobs.broker); a broker that
cannot take them is answered 503."""

import logging

from kombu.exceptions import KombuError

from posterq.api import context
from posterq.api.exceptions import ApiError
from posterq.jobs.broker import tokens_for
from posterq.jobs.redis_errors import RedisError

log = logging.getLogger(__name__)


def enqueue(posters: int, pool: str = "") -> int:
    """Send the tokens for a job's posters to its pool's queue; return how many (503 ApiError if not)."""
    broker = context.broker(pool)
    count = tokens_for(posters, broker.settings.batch_size)
    # Tokens already sent find the job's refs gone (Jobs.create discards them) and end at once.
    _send(lambda: broker.send(count))
    return count


def enqueue_enumeration(job_id: str, pool: str = "") -> None:
    """Send the task that lists a directory job's folder to its pool's queue (503 ApiError if it cannot)."""
    _send(lambda: context.broker(pool).send_enumeration(job_id))


def _send(send) -> None:
    try:
        send()
    except (KombuError, RedisError, OSError) as exc:
        log.error("cannot send tasks: %s", exc)
        raise ApiError("the queue cannot take the job now; try again later", "queue_unavailable",
                       503) from exc
