"""Listing a directory job's folder in the background, chunk by chunk, resumable from its cursor.

`POST /jobs {"directory": ...}` answers at once; a worker runs this. Each chunk of files goes to
the ledger in one transaction with the job's cursor (the last relative path listed) and count, so
an enumeration killed at any point (its worker, the API, Redis) resumes after the last committed
chunk and lists no file twice: the chunk's write is refused unless the count is still the one
this enumeration started its chunk from. One enumeration of a job runs at a time (a lock in
Redis with a TTL, renewed per chunk); the sweep starts a new one for a job whose lock lapsed.
"""

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from posterq import gate
from posterq.bundle import sha256_of
from posterq.exceptions import PosterqError
from posterq.files import UnlistedFolder, display_name, exact_text, from_exact_text, read_poster, walk_files
from posterq.jobs.broker import tokens_for
from posterq.jobs.keys import JobStatus
from posterq.jobs.pools import DEFAULT_POOL
from posterq.jobs.redis_errors import transient
from posterq.jobs.reuse import Identity, identity_of
from posterq.jobs.stats import Counter
from posterq.jobs.store import JobStore

log = logging.getLogger(__name__)

#: The error code of the row that ends a listing that failed too often (see enumerate_folder).
LISTING_FAILED = "listing_failed"
#: Items per ledger transaction: large enough that COPY runs at full speed, small enough that a
#: cancel or a crash loses little listing work.
CHUNK = 5000
#: Seconds before a listing paused for room (its key's limit) looks again: one count in the
#: database a second per paused job is cheap, and results free room within seconds.
PAUSE_SECONDS = 1.0


def lock_ttl(settings) -> int:
    """Seconds the listing lock lives unless renewed (after every chunk): a batch's time limit.

    The sweep starts a new listing once it has lapsed; one that was only slow then loses a race
    for its next chunk (Ledger.add_found) and stops, so a file is still listed once.
    """
    return max(1, int(settings.batch_time_limit))


@dataclass(frozen=True)
class EnumerationReport:
    """What one run of a job's enumeration did."""

    job_id: str
    found: int = 0
    finished: bool = False
    more: bool = False  # stopped for time: a continuation goes on from the cursor
    paused: bool = False  # stopped because its key (or the service) has no room: resumed later
    output_due: bool = False  # the listing finished the job, which writes an output file
    skipped: str = ""
    failed: bool = False  # the listing failed too often and was ended (a listing_failed row)


def enumerate_folder(store: JobStore, job_id: str, send_tokens: Callable[[int], None],
                     seconds: float = float("inf")) -> EnumerationReport:
    """List the job's folder from its cursor on into the ledger, topping its window up as it goes.

    Stops after the chunk that passes `seconds` (report.more): a task then sends its
    continuation, so that listing a huge folder never holds a worker process for long.
    """
    token, ttl = uuid.uuid4().hex, lock_ttl(store.settings)
    if not store.claims.lock_listing(job_id, token, ttl):
        return EnumerationReport(job_id, skipped="another enumeration of the job is running")
    try:
        return _enumerate(store, job_id, send_tokens, lambda: store.claims.renew_listing(job_id, ttl),
                          time.monotonic() + seconds)
    except Exception as exc:
        # A store that is down or full passes: the task tries again, as often as it takes. Any
        # other error may never pass (a name the database refuses would keep the job queued
        # forever), so it is counted, and the job's listing ends after max_redeliveries of them.
        if transient(exc) or not _gives_up(store, job_id):
            raise
        log.exception("job %s: listing its folder failed %d times; the job ends with what was listed",
                      job_id, store.settings.max_redeliveries + 1)
        return _end_listing(store, job_id, exc)
    finally:
        store.claims.unlock_listing(job_id, token)


def _enumerate(store: JobStore, job_id: str, send_tokens, renew, deadline: float) -> EnumerationReport:
    job = store.ledger.get(job_id)
    if job is None or JobStatus(job["status"]).final or job["enumerated"]:
        return EnumerationReport(job_id, skipped="the job is gone, final or listed already")
    found, cursor = int(job["total"]), job["enum_cursor"] or ""
    try:
        folder = store.settings.resolve_data_path(job["directory"])
        # The API stored the folder resolved, and checked it against the key's own data roots,
        # which workers do not have: a folder that resolves elsewhere now (a link swapped in after
        # submit) is not the one that was checked, so it is not read.
        if folder != Path(job["directory"]):
            raise PosterqError(f"the folder is a link now, to {folder}, since the job was submitted",
                               "folder_changed")
    except PosterqError as exc:  # the roots changed since the job was accepted, or the folder did
        entries = iter([UnlistedFolder((), exc.message)])
        folder = None
    else:
        after = tuple(from_exact_text(cursor).split("/")) if cursor else ()
        entries = walk_files(folder, bool(job["recursive"]), after)
    # Admission (posterq.jobs.admission): each chunk is admitted under the key's limit; a chunk
    # that does not fit is cut where it stops fitting, and the listing pauses there, its cursor
    # on the last poster admitted, until results make room.
    quota = store.jobs.listing_quota(job)
    if quota.room(*store.ledger.queued(quota.owner)) == 0:
        return _paused(store, job_id, 0)
    reuse = _reuse_identity(store, job)
    listed, chunk = 0, []
    for entry in entries:
        chunk.append(_item(entry, folder, job["directory"]))
        if len(chunk) >= CHUNK:
            written = _commit(store, job, found, chunk, send_tokens, quota, reuse)
            if written is None:
                return EnumerationReport(job_id, listed, skipped="the job was cancelled or listed elsewhere")
            found, listed = found + written, listed + written
            if written < len(chunk):
                return _paused(store, job_id, listed)
            chunk = []
            renew()
            gate.wait(store.settings.test_gate, gate.LISTING)  # tests only: off unless POSTERQ_TEST_GATE
            if time.monotonic() > deadline:
                return EnumerationReport(job_id, listed, more=True)
    if chunk:
        written = _commit(store, job, found, chunk, send_tokens, quota, reuse)
        if written is None:
            return EnumerationReport(job_id, listed, skipped="the job was cancelled or listed elsewhere")
        if written < len(chunk):
            return _paused(store, job_id, listed + written)
    listed, found = listed + len(chunk), found + len(chunk)
    finished = store.ledger.finish_enumeration(job_id)
    if finished:  # every poster was already done (or the folder held only unlistable folders)
        store.jobs.finish(job_id, finished.status)
    log.info("job %s: listed %d files (%d in all); the folder is done", job_id, listed, found)
    return EnumerationReport(job_id, listed, finished=True, output_due=bool(finished and finished.has_output))


def _paused(store: JobStore, job_id: str, listed: int) -> EnumerationReport:
    # Counted, so that an operator sees keys held at their part (/metrics: posterq_listings_paused).
    store.stats.count(Counter.LISTINGS_PAUSED)
    log.info("job %s: listed %d more files; its key has no room left in the queue, so the listing "
             "pauses", job_id, listed)
    return EnumerationReport(job_id, listed, paused=True)


def _item(entry, folder, directory: str) -> dict:
    # A file becomes a pending item named by its path under the folder; a folder that cannot be
    # listed becomes one failed item, so the job says what it could not see. Any name the file
    # system gives is one row: the name shown has \xNN for bytes that are not UTF-8, while the
    # cursor and the path keep the exact bytes (exact_text), so the worker opens that very file.
    if isinstance(entry, UnlistedFolder):
        name = "/".join(entry.parts)
        return {"name": display_name(name) if name else directory, "cursor": exact_text(name),
                "error": {"code": "unreadable", "message": f"the folder could not be listed: {entry.reason}"}}
    name = entry.relative_to(folder).as_posix()
    return {"name": display_name(name), "cursor": exact_text(name), "path": exact_text(str(entry))}


def _reuse_identity(store: JobStore, job: dict) -> Identity | None:
    # The model whose stored results the job's posters may reuse (posterq.jobs.reuse): None when
    # the job or the service says not to, or when the live workers of its pool hold no one model.
    if not (job["reuse"] and store.settings.reuse_results):
        return None
    return identity_of(store.for_pool(DEFAULT_POOL).stats.workers(), job["pool"] or DEFAULT_POOL)


def _hash(item: dict, settings) -> str | None:
    # The poster's sha256, read as a worker would read it (never a pipe, nothing over the size
    # limit); None when it cannot be read: the worker then says why.
    if item.get("error") or "path" not in item:
        return None
    try:
        return sha256_of(read_poster(from_exact_text(item["path"]), settings.max_file_bytes))
    except PosterqError:
        return None


def _commit(store: JobStore, job: dict, found: int, chunk: list[dict], send_tokens, quota,
            reuse: Identity | None = None) -> int | None:
    # The chunk's admitted part into the ledger with its cursor, then its posters already
    # classified by the job's model written as reused (posterq.jobs.reuse), then the job's window
    # topped up with tokens: how many were written, None when the job moved on.
    job_id, plan = job["id"], None
    if reuse is not None:
        plan = store.jobs.reuse.plan([_hash(item, store.settings) for item in chunk], reuse, job["top_k"])
        chunk = plan.marked(chunk, offset=found)  # item i of the chunk is index found + i of the job
    written = store.ledger.add_found(job_id, found, chunk, chunk[-1]["cursor"], quota)
    if written and plan is not None:
        plan.reused = {i: stored for i, stored in plan.reused.items() if i < written}
        store.jobs.reuse.write(store.ledger, job_id, [item["name"] for item in chunk], plan, offset=found)
    if written:
        made = store.window.top_up(job_id)
        if made:
            send_tokens(tokens_for(made, store.settings.batch_size))
    return written


def _gives_up(store: JobStore, job_id: str) -> bool:
    # Counted in Redis, not in the task's retries: the sweep starts new listing tasks too.
    return store.claims.count_listing_error(job_id) > store.settings.max_redeliveries


def _end_listing(store: JobStore, job_id: str, exc: Exception) -> EnumerationReport:
    # One failed row says where and why the listing stopped, and the job's own error says it too:
    # the job ends failed once what was listed is labelled, never done with half a folder.
    job = store.ledger.get(job_id)
    if job is None or JobStatus(job["status"]).final or job["enumerated"]:
        return EnumerationReport(job_id, skipped="the job is gone, final or listed already")
    cursor = job["enum_cursor"] or ""
    where = f" after {display_name(from_exact_text(cursor))}" if cursor else ""
    error = {"code": LISTING_FAILED, "message": f"listing the folder failed{where} "
                                                f"({store.settings.max_redeliveries + 1} tries): "
                                                f"{type(exc).__name__}: {exc}"}
    row = {"name": job["directory"], "cursor": cursor, "error": error}
    if not store.ledger.add_found(job_id, int(job["total"]), [row], cursor):
        return EnumerationReport(job_id, skipped="the job was cancelled or listed elsewhere")
    finished = store.ledger.finish_enumeration(job_id, error)
    if finished:
        store.jobs.finish(job_id, finished.status)
    return EnumerationReport(job_id, finished=True, output_due=bool(finished and finished.has_output),
                             failed=True)
