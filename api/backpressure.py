"""Backpressure: refuse new work with a Retry-After while too many posters are queued (429) or while
Redis has too little memory left for it (503 `redis_full`).

Posters are counted as posterq.jobs.admission counts them: every poster admitted and not yet
written, uploads and listed folders, in every model's pool. A key at its own limit gets 429
`key_queue_full`; the service at its limit, 429 `queue_full`.
"""

import logging
import math

from flask import abort, after_this_request, current_app, request

from posterq.api import auth
from posterq.api.handlers import error_response
from posterq.exceptions import QueueFull
from posterq.jobs.admission import Quota, quota
from posterq.jobs.memory import RedisMemory
from posterq.jobs.redis_errors import RedisError
from posterq.jobs.stats import BATCH_SECONDS, BATCH_SIZE, Counter
from posterq.jobs.store import JobStore

log = logging.getLogger(__name__)

#: Retry-After when the queue is full and no rate can be measured yet (no batch has run, or no
#: worker is alive to drain it).
RETRY_AFTER_UNKNOWN = 60
#: Retry-After never says more than this: an estimate further out is a guess, and a client that
#: waits too long wastes capacity that comes back sooner.
RETRY_AFTER_MAX = 600


def admission_quota(store: JobStore, owner: str = "") -> Quota:
    """The limits a submission of `owner` is admitted under (posterq.jobs.admission)."""
    return quota(store.settings, owner, auth.key_count())


def refuse_when_full(store: JobStore, owner: str = "") -> None:
    """Refuse with Retry-After: 429 when the key's part of the queue or all of it is full, 503 for Redis.

    POSTERQ_MAX_QUEUED_POSTERS bounds the posters queued in all, and each key may have its
    part of it queued (posterq.jobs.admission.key_limit), so that one key cannot fill the queue
    for everybody. This is the cheap check made before the body is read: a submission that
    does not fit is refused again, exactly, when its posters are admitted (QueueFull). With keys,
    the message says nothing of other keys' work. POSTERQ_REDIS_HEADROOM is the fraction of
    Redis's maxmemory that new work leaves to the work already accepted (see _refuse_when_redis_full).
    """
    limits = admission_quota(store, owner)
    mine, everyone = store.ledger.queued(owner)
    if limits.key_limit is not None and mine >= limits.key_limit:
        refuse_queue_full(store, QueueFull(f"{mine} of your posters are queued, the limit of "
                                           f"{limits.key_limit} a key", "key_queue_full", mine,
                                           limits.key_limit, 1))
    if everyone >= limits.total_limit:
        told = "the queue is full" if owner else (f"{everyone} posters are queued, the limit of "
                                                  f"{limits.total_limit}")
        refuse_queue_full(store, QueueFull(told, "queue_full", everyone, limits.total_limit, 1))
    _refuse_when_redis_full(store, store.fair_queue.depth(), owner)


def refuse_queue_full(store: JobStore, exc: QueueFull) -> None:
    """Abort the request with queue_full_response(store, exc)."""
    abort(queue_full_response(store, exc))


def queue_full_response(store: JobStore, exc: QueueFull):
    """429 with exc's code and a Retry-After: about when enough posters will have finished.

    A key's own posters run at its share of the workers, one of the tenants waiting: room for
    `excess` of them comes after about excess x tenants posters have run.
    """
    share = 1
    if exc.code == "key_queue_full":
        share = max(1, sum(1 for field in store.fair_queue.waiting() if field.startswith("tenant:")))
    # With keys, the service's figures stay out: they tell of other keys' work.
    told = exc.message if exc.code == "key_queue_full" or not auth.keys_enabled() else "the queue is full"
    seconds = drain_seconds(store, exc.excess * share)
    return _retry_after_response(exc.code, f"{told}; try again in {seconds} s", 429, seconds)


def register(app) -> None:
    """Answer a submission refused as its posters were admitted (QueueFull) as refuse_when_full does."""
    from posterq.api import context  # the app's store, as the views see it

    @app.errorhandler(QueueFull)
    def _queue_full(exc: QueueFull):
        return queue_full_response(context.store(), exc)


def redis_memory(store: JobStore) -> RedisMemory:
    """This app's RedisMemory, made on first use."""
    extensions = current_app.extensions
    memory = extensions.get("posterq.redis_memory")
    if memory is None:
        memory = RedisMemory.of(store)
        memory = extensions.setdefault("posterq.redis_memory", memory)
    return memory


def _refuse_when_redis_full(store: JobStore, waiting: int, owner: str) -> None:
    # What the request will put in Redis is about its body (uploads are stored as sent; a zip of
    # posters hardly compresses), known from Content-Length before it is read; a body of unknown
    # length may be as large as the limit. Accepted work needs no more of Redis than it holds:
    # results go to the database, and a directory job's window is taken from the headroom.
    settings = store.settings
    body = request.content_length
    body = settings.max_request_bytes if body is None else body
    memory = redis_memory(store)
    admitted, used, limit = memory.admit(body, settings.redis_headroom)
    if admitted:
        @after_this_request
        def _ended(response):
            memory.done(body)
            return response

        return
    try:
        store.stats.count(Counter.REDIS_FULL)
    except RedisError:  # a count lost is better than the answer lost
        pass
    # Memory comes back as the waiting posters are classified: an upload's bytes go with its result.
    seconds = drain_seconds(store, max(waiting, 1))
    # With keys, the figures stay out: they tell of every key's work.
    figures = "" if owner else f" ({used} bytes used of the {limit} that new work may fill)"
    _abort_with_retry_after("redis_full", f"Redis has too little memory left for new work{figures}; try "
                                          f"again in {seconds} s", 503, seconds)


def _retry_after_response(code: str, message: str, status: int, seconds: int):
    response, status = error_response(code, message, status)
    response.status_code = status
    response.headers["Retry-After"] = str(seconds)
    return response


def _abort_with_retry_after(code: str, message: str, status: int, seconds: int) -> None:
    # A ready response passes through flask.abort as it is: the handlers in posterq.api.handlers carry no
    # headers, and this one needs Retry-After.
    abort(_retry_after_response(code, message, status, seconds))


def drain_seconds(store: JobStore, posters: int) -> int:
    """About how long the live workers take to run this many posters, from the batches measured so far."""
    stats = store.stats.read()
    measured, seconds = stats.get(BATCH_SIZE.sum_field, 0.0), stats.get(BATCH_SECONDS.sum_field, 0.0)
    processes = sum(int(info.get("processes") or 1) for info in store.stats.workers().values())
    if measured <= 0 or seconds <= 0 or processes <= 0:
        return RETRY_AFTER_UNKNOWN
    return max(1, min(RETRY_AFTER_MAX, math.ceil(posters * seconds / measured / processes)))
