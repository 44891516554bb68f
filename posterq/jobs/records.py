"""Job records: create a job with its items and upload bytes, read its state and results, cancel it.

What lasts (the job's row, counts, status, results) is the ledger's (posterq.jobs.ledger, in the
database); Redis holds what is in flight: the job's hash of what workers need, the items and refs
made ready, upload bytes, and the done list that long-polls block on.
"""

import json
import logging
import time
from collections.abc import Callable

import redis

from posterq.bundle import sha256_of
from posterq.config import Settings
from posterq.exceptions import IdempotencyKeyReused, PostersGone, SubmissionExists
from posterq.jobs import scripts
from posterq.jobs.admission import Quota
from posterq.jobs.fair_queue import FairQueue
from posterq.jobs.keys import ItemKind, JobStatus, Keys, Lane, OutputStatus, job_hash, new_job_id, ref
from posterq.jobs.ledger import Ledger
from posterq.jobs.reuse import Identity, Reuse
from posterq.jobs.stats import LabelledCounter
from posterq.jobs.view_fields import public_model, view_fields

log = logging.getLogger(__name__)

# Fields per HSET/RPUSH call, so that a 10,000-poster job is not one giant command.
_CHUNK = 1000
# Seconds a discarded job's id stays marked: long past any EXEC of its write still in flight.
_DISCARD_MARK_TTL = 600
#: Seconds an Idempotency-Key names the job it made: a client's retries of one submission come
#: well within a day (the convention of payment and cloud APIs).
IDEMPOTENCY_SECONDS = 24 * 3600
#: Seconds a submission's lease in Redis lives: longer than writing any job takes (the body is in
#: before the lease is taken). A submission that is not complete and holds no lease any more was
#: cut off (its API process died): a retry of it, or the sweep, removes it.
SUBMISSION_LEASE = 10
#: Seconds a final job's hash and done list stay in Redis: enough for the long-polls of the moment
#: to wake; everything else about the job is read from the ledger.
FINISHED_TTL = 3600

class Jobs:
    """Jobs: their rows in the ledger and, while they run, their hashes, items and bytes in Redis."""

    def __init__(self, client: redis.Redis, settings: Settings, keys: Keys, fair_queue: FairQueue,
                 ledger: Ledger, pool: str = "", in_pool: "Callable[[str], Jobs] | None" = None):
        self.client, self.settings, self.keys, self.fair_queue = client, settings, keys, fair_queue
        self.ledger = ledger
        # The pool whose Redis side these are, and the Jobs of any other pool: a job's hash, done
        # list and queue are its pool's (posterq.jobs.pools).
        self.pool = pool
        self._in_pool = in_pool or (lambda other: self)
        self.reuse = Reuse(ledger.db)
        self._discard_script = scripts.register(client, "discard.lua")

    def of(self, job: dict) -> "Jobs":
        """The Jobs of the pool a job (a ledger row, or a view) lives in."""
        pool = job.get("pool", job.get("requested_model")) or ""
        return self if pool == self.pool else self._in_pool(pool)

    def create(self, source: str, items: list[dict], blobs: list[bytes | None],
               top_k: int | None = None, owner: str = "",
               enqueue: Callable[[int], object] | None = None, lane: Lane = Lane.BULK,
               weight: float = 1, idempotency_key: str | None = None,
               request_digest: str | None = None, quota: Quota | None = None,
               name: str | None = None, reuse: bool = False, identity: Identity | None = None) -> dict:
        """Store a job, its items, upload bytes and ready refs, then call enqueue(posters) for its tokens.

        All or nothing: when the write or enqueue raises, whatever the job wrote (its row, record,
        items, bytes, refs) is removed before the error goes on, so no ref is left waiting without
        a token. owner is who may see the job (posterq.api.auth: a digest of the API key that made it;
        never the key) and the tenant its posters are scheduled as, with `weight`; a job without
        an owner is a tenant of its own. lane: Lane.INTERACTIVE for one-poster calls.
        idempotency_key: the client's key for this submission, and request_digest the fingerprint
        of the request it came with (see replay()). quota: the limits its posters are admitted
        under (posterq.jobs.admission; QueueFull when they do not fit). name: the client's name
        for the job (posterq.jobs.view_fields), or None. reuse: whether the job reuses results by
        content (posterq.jobs.reuse), under `identity`, the model its pool will classify with (None
        when not known: nothing is reused); reused posters are written at once, and neither they
        nor twins of another item are queued or keep their bytes in Redis.
        """
        record = self._record(source, top_k, owner, lane, enumerated=True, idempotency_key=idempotency_key,
                              request_digest=request_digest)
        record.update(name=name, total=len(items), reuse=reuse)
        plan = None
        if reuse and identity is not None:
            plan = self.reuse.plan([sha256_of(data) if data is not None else None for data in blobs],
                                   identity, top_k)
            items = plan.marked(items)
        queued = plan.queued() if plan else list(range(len(items)))
        self._begin(record, items, quota)
        try:
            self._write(record, items, blobs, weight, queued)
            if enqueue is not None:
                enqueue(len(queued))
            if plan and plan.reused:
                names = [item["name"] for item in items]
                for job in self.reuse.write(self.ledger, record["id"], names, plan):
                    self.finish(job.job_id, job.status)
            self._complete(record)
        except BaseException:
            self._discard(record, queued)
            raise
        if plan and plan.reused:
            # Its counts moved on as the reused results were written: read back (they are written).
            return self.get(record["id"]) or self.view(record)
        # Built from what was written rather than read back: a read that failed now would answer
        # an error for a job that is queued and will run.
        return self.view(record)

    def create_directory(self, directory: str, recursive: bool, top_k: int | None = None, owner: str = "",
                         enumerate_job: Callable[[str], object] | None = None, weight: float = 1,
                         output: str | None = None, idempotency_key: str | None = None,
                         request_digest: str | None = None, quota: Quota | None = None,
                         overwrite: bool = False, name: str | None = None, folder: str | None = None,
                         reuse: bool = False) -> dict:
        """Store a directory job whose folder a worker lists in the background; call enumerate_job(id).

        Answers at once whatever the folder holds: its items reach the ledger chunk by chunk
        (posterq.worker.enumeration) and Redis a window at a time (posterq.jobs.window). All or nothing
        as create() is. `output`: the file the results go to once the job is done (posterq.worker.outputs),
        replacing a file of that name only with `overwrite`. name: the client's name for the job,
        folder: the directory as its view shows it (posterq.jobs.view_fields). quota: refused
        (QueueFull) unless it has room for a poster; its listing admits each chunk under the same
        key limit (kept in the job's hash as key_limit). reuse: whether its listing reuses results by
        content (posterq.jobs.reuse).
        """
        record = self._record("directory", top_k, owner, Lane.BULK, enumerated=False,
                              idempotency_key=idempotency_key, request_digest=request_digest)
        record.update(directory=directory, recursive=recursive, output=output,
                      output_overwrite=bool(output and overwrite), name=name, folder=folder, reuse=reuse)
        if quota is not None and quota.key_limit is not None:
            record["key_limit"] = quota.key_limit
        self._begin(record, [], quota)
        try:
            self._write(record, [], [], weight, [])
            if enumerate_job is not None:
                enumerate_job(record["id"])
            self._complete(record)
        except BaseException:
            self._discard(record, [])
            raise
        return self.view(record)

    def _begin(self, record: dict, items: list[dict], quota: Quota | None = None) -> None:
        # The lease first: a row without it is a submission that was cut off.
        self.client.set(self.keys.submitting(record["id"]), "1", ex=SUBMISSION_LEASE)
        try:
            self.ledger.create(record, items, quota)
        except BaseException:
            self.client.delete(self.keys.submitting(record["id"]))
            raise

    def _complete(self, record: dict) -> None:
        self.ledger.mark_submitted(record["id"])
        self.client.delete(self.keys.submitting(record["id"]))

    def listing_quota(self, job: dict) -> Quota:
        """The quota a directory job's listing admits its chunks under: its key's limit at submit."""
        owner = job.get("owner") or ""
        if not owner:
            return Quota("", None, self.settings.max_queued_posters)
        # The API wrote the key's limit (posterq.jobs.admission.key_limit) into the job's hash; a
        # hash rebuilt after Redis lost it falls back on the per-key setting (the global limit
        # still holds whatever it says).
        raw = self.client.hget(self.keys.job(job["id"]), "key_limit")
        limit = int(raw) if raw else self.settings.max_queued_posters_per_key
        return Quota(owner, limit, self.settings.max_queued_posters)

    def cut_off(self, job: dict) -> bool:
        """True for a job whose submission never completed and never will (no lease holds it)."""
        return not job["submitted"] and not self.client.exists(self.keys.submitting(job["id"]))

    def replay(self, owner: str, key: str, request_digest: str | None = None) -> dict | None:
        """The job an earlier submission of `owner` with this Idempotency-Key made; None: make a new one.

        Raises IdempotencyKeyReused when that submission's request had another fingerprint than
        request_digest, and SubmissionExists while it is still being made. One that was cut off
        (its API process died half-way) is removed, and the key makes a new job.
        """
        job = self.ledger.by_idempotency_key(owner, key, IDEMPOTENCY_SECONDS)
        if job is None:
            return None
        # A job without a digest (made by a release that kept none) replays unchecked.
        if request_digest and job.get("request_digest") and job["request_digest"] != request_digest:
            raise IdempotencyKeyReused(f"the Idempotency-Key {key!r} was used for another request (job "
                                       f"{job['id']}); send a new key for a new submission")
        if job["submitted"]:
            return self.view(job)
        if self.of(job).cut_off(job):
            self.of(job).abandon(job)
            return None
        raise SubmissionExists("a submission with this Idempotency-Key is still being made; try again "
                               "in a few seconds")

    def abandon(self, job: dict) -> None:
        """Remove a job whose submission never completed (its row says not submitted)."""
        blobs = range(int(job["total"])) if job["source"] != "directory" else []
        self._discard(job, list(blobs))

    def _record(self, source: str, top_k: int | None, owner: str, lane: Lane, enumerated: bool,
                idempotency_key: str | None = None, request_digest: str | None = None) -> dict:
        job_id = new_job_id()
        return {"id": job_id, "status": JobStatus.QUEUED.value, "source": source, "top_k": top_k or 0,
                "pool": self.pool,
                "created_at": time.time(), "lane": lane.value, "tenant": owner or job_id, "owner": owner,
                "enumerated": enumerated, "total": 0, "done": 0, "failed": 0,
                "idempotency_key": idempotency_key, "request_digest": request_digest}

    def _write(self, record: dict, items: list[dict], blobs: list[bytes | None], weight: float,
               queued: list[int]) -> None:
        """Write a new job's Redis side in one MULTI/EXEC, aborted if _discard has already marked its id.

        Only the `queued` items (indexes) go to Redis: the others are reused (posterq.jobs.reuse).
        """
        job_id, keys = record["id"], self.keys
        fields = job_hash(record, fed=len(items) - 1)
        # Unfinished jobs expire too, in case no worker ever comes: uploads first, the hash later
        # (the sweep rebuilds the hash of a job the ledger still runs).
        ttl = self.settings.upload_ttl + self.settings.result_ttl
        with self.client.pipeline(transaction=True) as pipe:
            # An EXEC whose answer timed out may still run after _discard cleaned up; WATCH on the
            # mark _discard sets makes such a late EXEC write nothing.
            pipe.watch(keys.discarded(job_id))
            pipe.multi()
            pipe.hset(keys.job(job_id), mapping=fields)
            pipe.expire(keys.job(job_id), ttl)
            for start, stop in _chunks(len(queued)):
                chunk = {str(i): json.dumps(items[i]) for i in queued[start:stop]}
                pipe.hset(keys.items(job_id), mapping=chunk)
            pipe.expire(keys.items(job_id), ttl)
            for index in queued:
                if blobs[index] is not None:
                    pipe.set(keys.blob(job_id, index), blobs[index], ex=self.settings.upload_ttl)
            # Refs last and tokens only after EXEC: a token that runs finds its refs or an empty list.
            for start, stop in _chunks(len(queued)):
                pipe.rpush(keys.ready(job_id), *[ref(job_id, i) for i in queued[start:stop]])
            if queued:
                self.fair_queue.make_ready(pipe, job_id, Lane(record["lane"]), record["tenant"], len(queued),
                                         weight)
            elif weight != 1:
                pipe.hset(keys.weights, record["tenant"], weight)
            pipe.hincrby(keys.stats, LabelledCounter.JOBS_SUBMITTED.field(record["source"]), 1)
            # Redis does not roll back a transaction in which one command failed: the caller
            # discards what the others wrote.
            pipe.execute()

    def _discard(self, record: dict, blob_indexes: list[int]) -> None:
        """Remove what a failed submission wrote; its keys expire anyway if Redis cannot be reached."""
        keys, job_id = self.keys, record["id"]
        names = [keys.discarded(job_id), keys.job(job_id), keys.items(job_id), keys.done(job_id), keys.stats,
                 keys.submitting(job_id), *(keys.blob(job_id, i) for i in blob_indexes)]
        try:
            self.ledger.delete(job_id)
        except Exception:  # the database is down: the row says queued with nothing in flight
            log.warning("could not remove the half-written job %s from the database", job_id, exc_info=True)
        try:
            # Out of the queue first: a token already sent then finds nothing of this job to claim.
            removed = self.fair_queue.drop(job_id, record["lane"], record["tenant"])
            submitted = LabelledCounter.JOBS_SUBMITTED.field(record["source"])
            self._discard_script(keys=names, args=[scripts.args(mark_ttl=_DISCARD_MARK_TTL,
                                                                submitted_field=submitted)])
        except redis.RedisError:
            # The record and bytes have TTLs; refs still waiting get tokens from the sweep.
            log.warning("could not remove the half-written job %s", job_id, exc_info=True)
            return
        log.info("submission of job %s failed: removed what it wrote (%d ready refs)", job_id, removed)

    def get(self, job_id: str) -> dict | None:
        """The job with counts, progress and timings, or None when it is unknown."""
        row = self.ledger.get(job_id)
        return None if row is None else self.view(row)

    @staticmethod
    def view(row: dict) -> dict:
        """The public shape of a job row."""
        total, done, failed = int(row["total"]), int(row["done"]), int(row["failed"])
        created, finished = float(row["created_at"]), row.get("finished_at")
        elapsed = (finished or time.time()) - created
        enumerated = bool(row["enumerated"])
        return {
            "id": row["id"],
            "status": row["status"],
            "source": row["source"],
            "total": total,
            "done": done,
            "failed": failed,
            # Of the posters known so far: a folder still being listed has more to come.
            "progress": (1.0 if enumerated else 0.0) if total == 0 else round((done + failed) / total, 4),
            "enumerated": enumerated,
            "top_k": int(row.get("top_k") or 0) or None,
            "model": public_model(row.get("model")),
            # The model the job named (posterq.jobs.pools), or None: any worker's model serves it.
            "requested_model": row.get("pool") or None,
            "created_at": created,
            "claimed_at": row.get("claimed_at"),
            "started_at": row.get("started_at"),
            "finished_at": finished,
            "elapsed_s": round(elapsed, 3),
            "posters_per_second": round((done + failed) / elapsed, 2) if finished and elapsed > 0 else None,
            # Why the job failed as a whole ({code, message}: a listing that gave up), else None.
            "error": row.get("error"),
            **_output_view(row),
            **view_fields(row),
            # The job this one repeats: its failed posters (a retry) or with another model (a rerun).
            "retry_of": row.get("retry_of"),
            "rerun_of": row.get("rerun_of"),
            # Whether posters its model classified before get their stored result (posterq.jobs.reuse).
            "reuse": bool(row.get("reuse", True)),
        }

    def owner(self, job_id: str) -> str | None:
        """Who may see the job ("" when nobody in particular), or None when there is no such job."""
        return self.ledger.owner(job_id)

    def wait(self, job_id: str, timeout: float) -> dict | None:
        """The job once it is final, or as it stands after `timeout` seconds (None when unknown).

        Blocks on the job's done list instead of polling. BLMOVE from the list onto itself leaves
        the element in place, so every client waiting on the same job wakes, and a job that
        finished before the call returns at once. The ledger is read again after each slice, so a
        done list that was never pushed (Redis restarted) delays the answer by one slice at most.
        """
        job = self.get(job_id)
        if job is None or JobStatus(job["status"]).final or timeout <= 0:
            return job
        if self.of(job) is not self:
            return self.of(job).wait(job_id, timeout)
        done = self.keys.done(job_id)
        # One blocking call may not outlast the client's socket timeout (redis-py would call the
        # silence a dead server), so a long wait blocks in slices of half of it.
        socket_timeout = self.client.connection_pool.connection_kwargs.get("socket_timeout")
        longest = socket_timeout / 2 if socket_timeout else timeout
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self.client.blmove(done, done, min(left, longest), "RIGHT", "LEFT") is not None:
                break
            job = self.get(job_id)
            if job is None or JobStatus(job["status"]).final:
                return job
        return self.get(job_id)

    def page(self, owner: str | None, status: str | None = None, offset: int = 0,
             limit: int = 100, name: str | None = None) -> list[dict]:
        """Jobs newest first: an owner's (None: everybody's), of one status or all, named like `name`."""
        return [self.view(row) for row in self.ledger.page(owner, status, offset, limit, name)]

    def results(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[dict]:
        """Items offset..offset+limit in submission order, each with its result once it has one."""
        return self.ledger.results(job_id, offset, limit)

    def cancel(self, job_id: str) -> dict | None:
        """Cancel what has not run: its waiting posters, upload bytes and the listing of its folder.

        The results already written stay, with the job's row, until the result TTL ends.
        """
        row = self.ledger.get(job_id)
        if row is None:
            return None
        if self.of(row) is not self:
            return self.of(row).cancel(job_id)
        cancelled = self.ledger.cancel(job_id)
        key = self.keys.job(job_id)
        lane, tenant, fed, source = self.client.hmget(key, ["lane", "tenant", "fed", "source"])
        # Upload bytes first: DEL is what a full Redis still takes, and it frees what the job held.
        # Refs of a cancelled job already in a batch are skipped by the worker that runs it; the
        # enumeration sees the status at its next chunk and stops.
        if source != b"directory":
            for start, stop in _chunks(int(fed or -1) + 1):
                self.client.delete(*[self.keys.blob(job_id, i) for i in range(start, stop)])
        if lane is not None and tenant is not None:
            # Its waiting posters leave the queue at once: they no longer count against anybody.
            self.fair_queue.drop(job_id, lane.decode(), tenant.decode())
        pipe = self.client.pipeline(transaction=True)
        if cancelled:
            pipe.hset(key, "status", JobStatus.CANCELLED.value)
            pipe.hincrby(self.keys.stats, LabelledCounter.JOBS_FINISHED.field(JobStatus.CANCELLED.value), 1)
            pipe.rpush(self.keys.done(job_id), JobStatus.CANCELLED.value)
        pipe.expire(self.keys.done(job_id), FINISHED_TTL)
        pipe.expire(key, FINISHED_TTL)
        pipe.delete(self.keys.items(job_id))
        pipe.execute()
        return self.get(job_id)

    def finished(self, pipe, job_id: str, status: str) -> None:
        """In pipe: tell Redis a job is final: its hash, its waiters, its items, the stats."""
        pipe.hset(self.keys.job(job_id), "status", status)
        pipe.rpush(self.keys.done(job_id), status)
        pipe.expire(self.keys.job(job_id), FINISHED_TTL)
        pipe.expire(self.keys.done(job_id), FINISHED_TTL)
        pipe.delete(self.keys.items(job_id))
        pipe.hincrby(self.keys.stats, LabelledCounter.JOBS_FINISHED.field(status), 1)

    def finish(self, job_id: str, status: str) -> None:
        """Tell Redis at once that a job is final (Jobs.finished in a pipeline of its own)."""
        pipe = self.client.pipeline(transaction=False)
        self.finished(pipe, job_id, status)
        pipe.execute()

    def queue_ages(self) -> tuple[dict[str, float], dict[str, float]]:
        """Seconds the oldest poster still waiting has waited since its job came, by lane and by tenant."""
        waiting = self.fair_queue.waiting_jobs()
        pipe = self.client.pipeline(transaction=False)
        for lane_jobs in waiting.values():
            for _, job_id in lane_jobs:
                pipe.hmget(self.keys.job(job_id), ["status", "created_at"])
        answers = iter(pipe.execute())
        now, by_lane, by_tenant = time.time(), {}, {}
        for lane, lane_jobs in waiting.items():
            by_lane[lane] = 0.0
            for tenant, _ in lane_jobs:
                status, created = next(answers)
                if status is not None and created is not None and not JobStatus(status.decode()).final:
                    by_lane[lane] = max(by_lane[lane], now - float(created))
                    by_tenant[tenant] = max(by_tenant.get(tenant, 0.0), now - float(created))
        return by_lane, by_tenant

    def repeat(self, original: dict, link: str, failed_only: bool, **create) -> dict:
        """A new job of `original`'s posters (its failed ones only, or all), linked to it by `link`.

        `link` is "retry_of" or "rerun_of"; `create` goes to create() (top_k, owner, enqueue, ...).
        Folder posters are named by path again; an upload's bytes only while Redis still keeps them
        (they go once their poster is classified, or after upload_ttl): PostersGone otherwise.
        """
        rows = self.ledger.items_of(original["id"], failed_only)
        uploads = [index for index, _, path in rows if path is None]
        blobs = self.of(original).kept_bytes(original["id"], uploads)
        items, datas = [], []
        for index, name, path in rows:
            if path is not None:
                items.append({"name": name, "kind": ItemKind.PATH.value, "path": path})
                datas.append(None)
            elif blobs.get(index) is None:
                raise PostersGone(f"the bytes of {name!r} (and maybe others) are no longer kept: an upload's "
                                  "poster is kept only until it is labelled; send it again in a new job")
            else:
                items.append({"name": name, "kind": ItemKind.UPLOAD.value})
                datas.append(blobs[index])
        job = self.create(original["source"], items, datas, **create)
        self.ledger.link(job["id"], link, original["id"])
        return {**job, link: original["id"], "folder": original.get("folder")}

    def kept_bytes(self, job_id: str, indexes: list[int]) -> dict[int, bytes | None]:
        """The upload bytes Redis still keeps of a job's items, by index (None where gone)."""
        found: dict[int, bytes | None] = {}
        for start, stop in _chunks(len(indexes)):
            chunk = indexes[start:stop]
            kept = self.client.mget([self.keys.blob(job_id, index) for index in chunk])
            found.update(zip(chunk, kept, strict=True))
        return found


def loaded_item(job_id: str, index: int, status: bytes | None, top_k: bytes | None, item: bytes | None,
                blob: bytes | None) -> dict | None:
    """A ref's item with its job's top_k and bytes, as a worker classifies it; None when its job is gone."""
    if status is None or item is None or JobStatus(status.decode()).final:
        return None
    entry = json.loads(item)
    entry.update(job_id=job_id, index=index, top_k=int(top_k or 0) or None, data=blob)
    return entry


def _output_view(row: dict) -> dict:
    """The output file's part of a job's view: where, how it stands, and its error (None when none)."""
    if not row.get("output"):
        return {"output": None, "output_status": None, "output_error": None}
    if row.get("output_written_at") is not None:
        status = OutputStatus.WRITTEN
    else:
        status = OutputStatus.FAILED if row.get("output_failed") else OutputStatus.PENDING
    # A pending file may carry the error of its last try: it is tried again, a bounded number of times.
    return {"output": row["output"], "output_status": status.value, "output_error": row.get("output_error")}


def _chunks(stop: int, start: int = 0):
    # (start, end) pairs covering start..stop in steps of _CHUNK.
    return [(i, min(i + _CHUNK, stop)) for i in range(start, stop, _CHUNK)]

