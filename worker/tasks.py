"""Celery tasks: thin wrappers that hand the work to worker.batching."""

import logging

import redis
from celery import shared_task

from posterq.jobs.broker import TASK_NAME
from worker import runtime
from worker.batching import run_batch

log = logging.getLogger(__name__)

#: The longest countdown of a batch retried because Redis refused a write for want of memory.
FULL_REDIS_RETRY_MAX = 30


def refused_for_memory(exc: BaseException) -> bool:
    """True for a command Redis refused because it is over its maxmemory (OOM), in a script or not."""
    return isinstance(exc, redis.OutOfMemoryError) or (
        isinstance(exc, redis.ResponseError) and "used memory > 'maxmemory'" in str(exc))


@shared_task(name=TASK_NAME, bind=True, max_retries=None)
def classify_batch(self):
    """Classify up to batch_size ready posters (see worker.batching for the protocol)."""
    try:
        report = run_batch(runtime.store(), runtime.classifier, self.request.id, self.request.hostname)
    except Exception as exc:
        countdown = 1
        if refused_for_memory(exc):
            # Nothing is wrong with the batch: wait longer each time for memory to be freed. A retry
            # that a full Redis cannot take is dropped, and the sweep gives the batch back later.
            countdown = min(FULL_REDIS_RETRY_MAX, 2 ** min(self.request.retries, 5))
            log.warning("batch %s: Redis is full (%s); trying again in %d s", self.request.id, exc, countdown)
        else:
            log.exception("batch %s failed; trying again", self.request.id)
        # Retried with the same task id, so the batch keeps its posters and its delivery count,
        # which ends the loop after max_redeliveries by failing the posters.
        raise self.retry(exc=exc, countdown=countdown) from None
    return report.written
