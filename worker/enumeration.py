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

from posterq import gate
from posterq.exceptions import PosterqError
from posterq.files import UnlistedFolder, walk_files
from posterq.jobs.broker import tokens_for
from posterq.jobs.schema import JobStatus
from posterq.jobs.store import JobStore

log = logging.getLogger(__name__)

#: Items per ledger transaction: large enough that COPY runs at full speed, small enough that a
#: cancel or a crash loses little listing work.
CHUNK = 5000


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
    output_due: bool = False  # the listing finished the job, which writes an output file
    skipped: str = ""


def enumerate_folder(store: JobStore, job_id: str, send_tokens: Callable[[int], None],
                     seconds: float = float("inf")) -> EnumerationReport:
    """List the job's folder from its cursor on into the ledger, topping its window up as it goes.

    Stops after the chunk that passes `seconds` (report.more): a task then sends its
    continuation, so that listing a huge folder never holds a worker process for long.
    """
    lock, token = store.keys.enumerating(job_id), uuid.uuid4().hex
    ttl = lock_ttl(store.settings)
    if not store.client.set(lock, token, nx=True, ex=ttl):
        return EnumerationReport(job_id, skipped="another enumeration of the job is running")
    try:
        return _enumerate(store, job_id, send_tokens, lambda: store.client.expire(lock, ttl),
                          time.monotonic() + seconds)
    finally:
        # Only this run's lock: one that lapsed may be another enumeration's by now.
        if store.client.get(lock) == token.encode():
            store.client.delete(lock)


def _enumerate(store: JobStore, job_id: str, send_tokens, renew, deadline: float) -> EnumerationReport:
    job = store.ledger.get(job_id)
    if job is None or JobStatus(job["status"]).final or job["enumerated"]:
        return EnumerationReport(job_id, skipped="the job is gone, final or listed already")
    found, cursor = int(job["total"]), job["enum_cursor"] or ""
    try:
        folder = store.settings.resolve_data_path(job["directory"])
    except PosterqError as exc:  # the roots changed since the job was accepted
        entries = iter([UnlistedFolder((), exc.message)])
        folder = None
    else:
        entries = walk_files(folder, bool(job["recursive"]), tuple(cursor.split("/")) if cursor else ())
    listed, chunk = 0, []
    for entry in entries:
        chunk.append(_item(entry, folder, job["directory"]))
        if len(chunk) >= CHUNK:
            if not _commit(store, job_id, found, chunk, send_tokens):
                return EnumerationReport(job_id, listed, skipped="the job was cancelled or listed elsewhere")
            found, listed, chunk = found + len(chunk), listed + len(chunk), []
            renew()
            gate.wait(store.settings.test_gate, gate.LISTING)  # tests only: off unless POSTERQ_TEST_GATE
            if time.monotonic() > deadline:
                return EnumerationReport(job_id, listed, more=True)
    if chunk and not _commit(store, job_id, found, chunk, send_tokens):
        return EnumerationReport(job_id, listed, skipped="the job was cancelled or listed elsewhere")
    listed, found = listed + len(chunk), found + len(chunk)
    finished = store.ledger.finish_enumeration(job_id)
    if finished:  # every poster was already done (or the folder held only unlistable folders)
        pipe = store.client.pipeline(transaction=False)
        store.jobs.finished(pipe, job_id, finished.status)
        pipe.execute()
    log.info("job %s: listed %d files (%d in all); the folder is done", job_id, listed, found)
    return EnumerationReport(job_id, listed, finished=True, output_due=bool(finished and finished.has_output))


def _item(entry, folder, directory: str) -> dict:
    # A file becomes a pending item named by its path under the folder; a folder that cannot be
    # listed becomes one failed item, so the job says what it could not see.
    if isinstance(entry, UnlistedFolder):
        name = "/".join(entry.parts) or directory
        return {"name": name, "cursor": "/".join(entry.parts),
                "error": {"code": "unreadable", "message": f"the folder could not be listed: {entry.reason}"}}
    name = entry.relative_to(folder).as_posix()
    return {"name": name, "cursor": name, "path": str(entry)}


def _commit(store: JobStore, job_id: str, found: int, chunk: list[dict], send_tokens) -> bool:
    # One chunk into the ledger with the cursor, then the job's window topped up with tokens.
    if not store.ledger.add_found(job_id, found, chunk, chunk[-1]["cursor"]):
        return False
    made = store.window.top_up(job_id)
    if made:
        send_tokens(tokens_for(made, store.settings.batch_size))
    return True
