"""Celery tasks: thin wrappers that hand the work to worker.batching."""

import logging

from celery import shared_task

from posterq.jobs.broker import TASK_NAME
from worker import runtime
from worker.batching import run_batch

log = logging.getLogger(__name__)


@shared_task(name=TASK_NAME, bind=True, max_retries=None)
def classify_batch(self):
    """Classify up to batch_size ready posters (see worker.batching for the protocol)."""
    try:
        report = run_batch(runtime.store(), runtime.classifier, self.request.id, self.request.hostname)
    except Exception as exc:
        # Retried with the same task id, so the batch keeps its posters and its delivery count,
        # which ends the loop after max_redeliveries by failing the posters.
        log.exception("batch %s failed; trying again", self.request.id)
        raise self.retry(exc=exc, countdown=1) from None
    return report.written
