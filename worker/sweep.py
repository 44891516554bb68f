"""The sweep: no accepted poster waits on a Celery message that no longer exists.

A batch task's posters sit in its batch list while it runs; its Celery message is what brings
the task back if its worker dies. That message can be lost: while Redis is down a failing task's
retry cannot be published and Celery drops the message, and a token sent while Redis restarts
may never land. So one live worker at a time (a lock in Redis) sweeps every sweep_interval, in each
pool (posterq.jobs.pools) the workers serve, that pool's jobs only:

- a batch whose claim is older than batch_time_limit plus two sweeps has no live task (Celery
  kills a batch at its time limit and delivers it again at once, which claims afresh): its posters
  go back to the head of the ready list, with new tokens; a poster whose next claim would be one
  too many (posterq.jobs.claims) fails with `redelivered_too_often` here instead;
- posters on the ready list that no batch has claimed for three sweeps while the Celery queue is
  empty have lost their tokens: new ones are sent. A spare token costs one empty claim;
- every job the database still runs: its hash is rebuilt if Redis lost it, its folder listing is
  started again if none holds the lock (the task was lost), and its window is topped up;
- a finished job whose output file is still missing gets its writing task again, until it is
  written or its error is final (posterq.worker.outputs);
- jobs that finished more than result_ttl ago leave the database, with their results.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from posterq.jobs.broker import Broker, tokens_for
from posterq.jobs.claims import redelivered_too_often
from posterq.jobs.records import SUBMISSION_LEASE
from posterq.jobs.stats import Counter
from posterq.jobs.store import JobStore
from posterq.worker.batching import fail_items
from posterq.worker.enumeration import lock_ttl
from posterq.worker.periodic import Periodic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did: posters given back and failed, tokens sent, posters topped up, listings
    started and jobs expired (all none where another worker holds the sweep)."""

    given_back: int
    failed: int
    tokens: int
    topped_up: int
    enumerations: int
    expired: int


def sweep(store: JobStore, send_tokens: Callable[[int], None], queued_tokens: Callable[[], int],
          send_enumeration: Callable[[str], None] = lambda job_id: None,
          send_output: Callable[[str], None] = lambda job_id: None) -> SweepReport:
    """Sweep once unless another worker is: give back lost batches, fail poisoned posters, send tokens."""
    settings, claims = store.settings, store.claims
    if not claims.lock_sweep(settings.sweep_interval):
        return SweepReport(0, 0, 0, 0, 0, 0)
    given_back, failed = _give_back(store)
    topped_up, enumerations = _look_after_jobs(store, send_enumeration)
    tokens = sum(tokens_for(n, settings.batch_size) for n in (given_back, topped_up))
    waiting = store.fair_queue.depth()
    if waiting and claims.idle_seconds() > 3 * settings.sweep_interval and queued_tokens() == 0:
        tokens = max(tokens, tokens_for(waiting, settings.batch_size))
    if tokens:
        send_tokens(tokens)
    if given_back or failed or tokens:
        log.warning("sweep: %d posters of lost batches given back, %d failed after too many give-backs, "
                    "%d tokens sent", given_back, failed, tokens)
        store.stats.count(Counter.SWEEP_GIVEN_BACK, given_back)
        store.stats.count(Counter.SWEEP_TOKENS, tokens)
    for job_id in store.ledger.outputs_due(store.pool):
        # One nudge a lock TTL: a task sent a moment ago may still be on its way.
        if claims.nudge(job_id, lock_ttl(settings)):
            send_output(job_id)
    expired = store.ledger.expire(settings.result_ttl)
    return SweepReport(given_back, failed, tokens, topped_up, enumerations, expired)


def _look_after_jobs(store: JobStore, send_enumeration: Callable[[str], None]) -> tuple[int, int]:
    # Every job the ledger runs has its Redis hash, a live listing until its folder is listed, and
    # a full window: (posters made ready, listings started).
    made = started = 0
    for job in store.ledger.abandoned(SUBMISSION_LEASE, store.pool):
        if store.jobs.cut_off(job):
            # Its API process died half-way through the submission, which its client never saw end.
            log.warning("sweep: removing job %s, whose submission never completed", job["id"])
            store.jobs.abandon(job)
    for job in store.ledger.active(store.pool):
        job_id = job["id"]
        # Every job listed is submitted: a job without its hash in Redis lost it (Redis restarted
        # without its data).
        store.window.restore(job)
        if (not job["enumerated"] and not store.claims.listing_runs(job_id)
                and store.claims.nudge(job_id, lock_ttl(store.settings))):
            send_enumeration(job_id)
            started += 1
        made += store.window.top_up(job_id)
    if started:
        log.warning("sweep: %d folder listings started again (their task was lost or is late)", started)
    return made, started


def _give_back(store: JobStore) -> tuple[int, int]:
    # Every batch whose task is gone gives its posters back, or fails those claimed too often:
    # (posters given back, posters failed).
    claims = store.claims
    older_than = store.settings.batch_time_limit + 2 * store.settings.sweep_interval
    given_back = failed = 0
    for batch_id in claims.stale(older_than):
        back = claims.give_back(batch_id, older_than)
        if back is None:
            continue
        given_back += back.ready
        if back.kept:
            # Written first: a sweep that dies here leaves them in the batch for the next one.
            claims.write_results(fail_items(back.exhausted, redelivered_too_often(claims.max_attempts)), {})
            claims.finish(batch_id)
            failed += len(back.exhausted)
    return given_back, failed


class Sweeper(Periodic):
    """Sweeps one pool every sweep_interval, from the worker's main process."""

    def __init__(self, store: JobStore, broker: Broker):
        name = f"posterq-sweep:{store.pool}" if store.pool else "posterq-sweep"
        super().__init__(name, store.settings.sweep_interval,
                         lambda: sweep(store, broker.send, broker.queued, broker.send_enumeration,
                                       broker.send_output))
