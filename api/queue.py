"""Sending batch tokens to the workers, by task name (the API never imports worker code), and
refusing new work while the queue is full (backpressure)."""

import logging
import math

import redis
from celery import Celery
from flask import abort
from kombu.exceptions import KombuError

from api.errors import error_response
from api.exceptions import ApiError
from posterq.config import Settings
from posterq.jobs.broker import TASK_NAME, celery_config
from posterq.jobs.store import JobStore

log = logging.getLogger(__name__)

#: Retry-After when the queue is full and no rate can be measured yet (no batch has run, or no
#: worker is alive to drain it).
RETRY_AFTER_UNKNOWN = 60
#: Retry-After never says more than this: an estimate further out is a guess, and a client that
#: waits too long wastes capacity that comes back sooner.
RETRY_AFTER_MAX = 600


class Enqueuer:
    """A Celery client (producer only) that sends batch tokens for new jobs."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.celery = Celery("posterq-api", set_as_current=False)
        self.celery.conf.update(celery_config(settings))

    def tokens_for(self, posters: int) -> int:
        """How many batch tasks a job of this many posters needs (see worker.batching)."""
        return math.ceil(posters / self.settings.batch_size)

    def send(self, posters: int) -> int:
        """Send the tokens for a job's posters; return how many were sent (503 ApiError if it cannot)."""
        count = self.tokens_for(posters)
        try:
            with self.celery.producer_or_acquire() as producer:
                for _ in range(count):
                    self.celery.send_task(TASK_NAME, queue=self.settings.queue, producer=producer)
        except (KombuError, redis.RedisError, OSError) as exc:
            # Tokens already sent find the job's refs gone (Jobs.create discards them) and end at once.
            log.error("cannot send batch tasks: %s", exc)
            raise ApiError("the queue cannot take the job now; try again later", "queue_unavailable",
                           503) from exc
        return count

    def depth(self) -> int:
        """Batch tasks waiting in the Celery queue (not counting ones a worker has reserved)."""
        with self.celery.connection_for_read() as connection:
            return int(connection.default_channel.client.llen(self.settings.queue))


def refuse_when_full(store: JobStore) -> None:
    """Answer 429 with Retry-After when more posters wait than POSTERQ_MAX_QUEUED_POSTERS allows."""
    limit = store.settings.max_queued_posters
    waiting = store.batches.queue_depth()
    if waiting <= limit:
        return
    seconds = drain_seconds(store, waiting - limit)
    response, status = error_response(
        "queue_full", f"{waiting} posters are waiting for a worker, over the limit of {limit}; "
                      f"try again in {seconds} s", 429)
    response.status_code = status
    response.headers["Retry-After"] = str(seconds)
    # A ready response passes through flask.abort as it is: the handlers in api.errors carry no
    # headers, and this one needs Retry-After.
    abort(response)


def drain_seconds(store: JobStore, posters: int) -> int:
    """About how long the live workers take to run this many posters, from the batches measured so far."""
    stats = store.stats.read()
    measured, seconds = stats.get("batch_size_sum", 0.0), stats.get("batch_seconds_sum", 0.0)
    processes = sum(int(info.get("processes") or 1) for info in store.stats.workers().values())
    if measured <= 0 or seconds <= 0 or processes <= 0:
        return RETRY_AFTER_UNKNOWN
    return max(1, min(RETRY_AFTER_MAX, math.ceil(posters * seconds / measured / processes)))
