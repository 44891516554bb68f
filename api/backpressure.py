"""Backpressure: refuse new work with 429 and a Retry-After while too many posters wait."""

import math

from flask import abort

from api.errors import error_response
from posterq.jobs.stats import BATCH_SECONDS, BATCH_SIZE
from posterq.jobs.store import JobStore

#: Retry-After when the queue is full and no rate can be measured yet (no batch has run, or no
#: worker is alive to drain it).
RETRY_AFTER_UNKNOWN = 60
#: Retry-After never says more than this: an estimate further out is a guess, and a client that
#: waits too long wastes capacity that comes back sooner.
RETRY_AFTER_MAX = 600


def refuse_when_full(store: JobStore, owner: str = "") -> None:
    """Answer 429 with Retry-After when the queue, or this key's part of it, holds too many posters.

    POSTERQ_MAX_QUEUED_POSTERS bounds the queue, POSTERQ_MAX_QUEUED_POSTERS_PER_KEY each key's
    posters in it, so that one key cannot fill it for everybody. With keys, the message says
    nothing of other keys' work: it gives the caller's own count, or only that the queue is full.
    """
    settings = store.settings
    if owner:
        mine, limit = store.schedule.tenant_depth(owner), settings.max_queued_posters_per_key
        if mine > limit:
            _refuse(store, mine - limit, f"{mine} of your posters are waiting for a worker, over the "
                                         f"limit of {limit} a key")
    waiting, limit = store.batches.queue_depth(), settings.max_queued_posters
    if waiting > limit:
        told = "the queue is full" if owner else (f"{waiting} posters are waiting for a worker, over the "
                                                  f"limit of {limit}")
        _refuse(store, waiting - limit, told)


def _refuse(store: JobStore, excess: int, told: str) -> None:
    seconds = drain_seconds(store, excess)
    response, status = error_response("queue_full", f"{told}; try again in {seconds} s", 429)
    response.status_code = status
    response.headers["Retry-After"] = str(seconds)
    # A ready response passes through flask.abort as it is: the handlers in api.errors carry no
    # headers, and this one needs Retry-After.
    abort(response)


def drain_seconds(store: JobStore, posters: int) -> int:
    """About how long the live workers take to run this many posters, from the batches measured so far."""
    stats = store.stats.read()
    measured, seconds = stats.get(BATCH_SIZE.sum_field, 0.0), stats.get(BATCH_SECONDS.sum_field, 0.0)
    processes = sum(int(info.get("processes") or 1) for info in store.stats.workers().values())
    if measured <= 0 or seconds <= 0 or processes <= 0:
        return RETRY_AFTER_UNKNOWN
    return max(1, min(RETRY_AFTER_MAX, math.ceil(posters * seconds / measured / processes)))
