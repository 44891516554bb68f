"""Celery tasks: thin wrappers over posterq.worker.batching, .enumeration and .outputs."""

import logging

from celery import shared_task

from posterq.exceptions import DatabaseUnavailable, OutputError
from posterq.jobs.broker import ENUMERATE_TASK, OUTPUT_TASK, TASK_NAME, Broker
from posterq.jobs.redis_errors import refused_for_memory
from posterq.worker import runtime
from posterq.worker.batching import run_batch
from posterq.worker.enumeration import PAUSE_SECONDS, enumerate_folder
from posterq.worker.outputs import write_output

log = logging.getLogger(__name__)

#: Seconds between tries, at most, while the database is down or Redis is full: the batch keeps its
#: posters meanwhile.
MAX_BACKOFF = 30


def _backoff(retries: int) -> float:
    # 1, 2, 4 ... MAX_BACKOFF seconds: a store that is down (or full) is not hammered, one back soon is used.
    return min(MAX_BACKOFF, 2 ** min(retries, 5))


#: Every task's request class (posterq.worker.acks): a Redis restart mid-task never ends the worker.
REQUEST = "posterq.worker.acks:Request"


@shared_task(name=TASK_NAME, bind=True, max_retries=None, Request=REQUEST)
def classify_batch(self, pool: str = ""):
    """Classify up to batch_size ready posters of a pool (see posterq.worker.batching for the protocol)."""
    store = runtime.store(pool)
    broker = Broker(self.app, store.settings, pool)
    try:
        hostname = runtime.shown_name(self.request.hostname)
        report = run_batch(store, runtime.classifier, self.request.id, hostname, broker.send)
    except DatabaseUnavailable as exc:
        # The results cannot be kept now: the batch keeps its posters and tries again, without
        # counting towards max_redeliveries (the posters are not at fault).
        log.warning("batch %s: %s; trying again", self.request.id, exc.message)
        store.claims.forgive(self.request.id)
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None
    except Exception as exc:
        countdown = 1
        if refused_for_memory(exc):
            # Nothing is wrong with the batch: wait longer each time for memory to be freed. A retry
            # that a full Redis cannot take is dropped, and the sweep gives the batch back later.
            countdown = _backoff(self.request.retries)
            log.warning("batch %s: Redis is full (%s); trying again in %d s", self.request.id, exc, countdown)
        else:
            log.exception("batch %s failed; trying again", self.request.id)
        # Retried with the same task id, so the batch keeps its posters and their claims counted,
        # which ends the loop after max_redeliveries by failing the posters (posterq.jobs.claims).
        raise self.retry(exc=exc, countdown=countdown) from None
    for job_id in report.outputs_due:
        broker.send_output(job_id)  # if this is lost, the sweep sends it again
    if pool and report.finished_jobs and store.forget_pool():
        broker.forget_queue()  # the model pool's last job ended: nothing of it stays in Redis
    return report.written


@shared_task(name=ENUMERATE_TASK, bind=True, max_retries=None, Request=REQUEST)
def enumerate_folder_task(self, job_id: str, pool: str = ""):
    """List a directory job's folder into the database (see posterq.worker.enumeration)."""
    store = runtime.store(pool)
    broker = Broker(self.app, store.settings, pool)
    try:
        # Half a batch's time limit at a time, so that the task never meets the limit.
        report = enumerate_folder(store, job_id, broker.send, store.settings.batch_time_limit / 2)
    except Exception as exc:
        # From its cursor on, later: nothing listed so far is listed again.
        log.warning("enumeration of job %s stopped (%s); trying again", job_id, exc)
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None
    if report.more:
        broker.send_enumeration(job_id)  # if this is lost, the sweep starts one once the lock lapses
    elif report.paused:
        # Its key has no room: the listing goes on from its cursor once results have made some.
        broker.send_enumeration(job_id, countdown=PAUSE_SECONDS)
    if report.output_due:
        broker.send_output(job_id)
    return report.found


@shared_task(name=OUTPUT_TASK, bind=True, max_retries=None, Request=REQUEST)
def write_output_task(self, job_id: str, pool: str = ""):
    """Write a finished job's output file (see posterq.worker.outputs)."""
    try:
        path = write_output(runtime.store(pool), job_id)
    except (OutputError, DatabaseUnavailable) as exc:
        # An OutputError here is one that may pass; the ledger counts its tries (max_output_tries).
        log.warning("output of job %s not written (%s); trying again", job_id, exc.message)
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None
    return str(path) if path else None
