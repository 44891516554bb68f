"""Celery tasks: thin wrappers that hand the work to worker.batching and worker.enumeration."""

import logging

from celery import shared_task

from posterq.exceptions import StoreUnavailable
from posterq.jobs.broker import ENUMERATE_TASK, OUTPUT_TASK, TASK_NAME, Broker
from worker import runtime
from worker.batching import run_batch
from worker.enumeration import enumerate_folder
from worker.outputs import write_output

log = logging.getLogger(__name__)

#: Seconds between tries while the database is down, at most: the batch keeps its posters meanwhile.
MAX_BACKOFF = 30


def _backoff(retries: int) -> float:
    # 1, 2, 4 ... MAX_BACKOFF seconds: a database that is down is not hammered, one back soon is used.
    return min(MAX_BACKOFF, 2 ** retries)


@shared_task(name=TASK_NAME, bind=True, max_retries=None)
def classify_batch(self):
    """Classify up to batch_size ready posters (see worker.batching for the protocol)."""
    store = runtime.store()
    broker = Broker(self.app, store.settings)
    try:
        report = run_batch(store, runtime.classifier, self.request.id, self.request.hostname, broker.send)
    except StoreUnavailable as exc:
        # The results cannot be kept now: the batch keeps its posters and tries again, without
        # counting towards max_redeliveries (the posters are not at fault).
        log.warning("batch %s: %s; trying again", self.request.id, exc.message)
        store.batches.uncount_delivery(self.request.id)
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None
    except Exception as exc:
        # Retried with the same task id, so the batch keeps its posters and its delivery count,
        # which ends the loop after max_redeliveries by failing the posters.
        log.exception("batch %s failed; trying again", self.request.id)
        raise self.retry(exc=exc, countdown=1) from None
    for job_id in report.outputs_due:
        broker.send_output(job_id)  # if this is lost, the sweep sends it again
    return report.written


@shared_task(name=ENUMERATE_TASK, bind=True, max_retries=None)
def enumerate_folder_task(self, job_id: str):
    """List a directory job's folder into the database (see worker.enumeration)."""
    store = runtime.store()
    broker = Broker(self.app, store.settings)
    try:
        # Half a batch's time limit at a time, so that the task never meets the limit.
        report = enumerate_folder(store, job_id, broker.send, store.settings.batch_time_limit / 2)
    except Exception as exc:
        # From its cursor on, later: nothing listed so far is listed again.
        log.warning("enumeration of job %s stopped (%s); trying again", job_id, exc)
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None
    if report.more:
        broker.send_enumeration(job_id)  # if this is lost, the sweep starts one once the lock lapses
    if report.output_due:
        broker.send_output(job_id)
    return report.found


@shared_task(name=OUTPUT_TASK, bind=True, max_retries=None)
def write_output_task(self, job_id: str):
    """Write a finished job's output file (see worker.outputs)."""
    try:
        path = write_output(runtime.store(), job_id)
    except (OSError, StoreUnavailable) as exc:
        log.warning("output of job %s not written (%s); trying again", job_id, exc)
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None
    return str(path) if path else None
