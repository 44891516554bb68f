"""Job records: create a job with its items and upload bytes, read its state and results, cancel it."""

import json
import logging
import time
from collections.abc import Callable

import redis

from posterq.config import Settings
from posterq.jobs.schedule import Schedule
from posterq.jobs.schema import JobStatus, Keys, Lane, ResultStatus, new_job_id, ref
from posterq.jobs.stats import LabelledCounter

log = logging.getLogger(__name__)

# Fields per HSET/RPUSH call, so that a 10,000-poster job is not one giant command.
_CHUNK = 1000
# Seconds a discarded job's id stays marked: long past any EXEC of its write still in flight.
_DISCARD_MARK_TTL = 600

# Removes what a failed submission wrote, in one step: marks the id (so that a late EXEC of its
# write is aborted by WATCH), deletes its record, items and bytes and takes its count off the
# stats (its waiting posters leave the queue through Schedule.drop first).
# KEYS: mark, job, items, results, done, stats, then the blobs. ARGV: mark ttl, the stats field
# the submission counted in.
_DISCARD = """
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
local existed = redis.call('EXISTS', KEYS[2])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
for i = 7, #KEYS do redis.call('DEL', KEYS[i]) end
-- Last and protected: the failure being cleaned up may be this very hash (a Lua error would stop
-- the script, and scripts are not rolled back either).
if existed == 1 then redis.pcall('HINCRBY', KEYS[6], ARGV[2], -1) end
"""


class Jobs:
    """The job hashes, their items, results and upload bytes."""

    def __init__(self, client: redis.Redis, settings: Settings, keys: Keys, schedule: Schedule):
        self.client, self.settings, self.keys, self.schedule = client, settings, keys, schedule
        self._discard_script = client.register_script(_DISCARD)

    def create(self, source: str, items: list[dict], blobs: list[bytes | None],
               top_k: int | None = None, owner: str = "",
               enqueue: Callable[[int], object] | None = None, lane: Lane = Lane.BULK,
               weight: float = 1) -> dict:
        """Store a job, its items, upload bytes and ready refs, then call enqueue(posters) for its tokens.

        All or nothing: when the write or enqueue raises, whatever the job wrote (record, items,
        bytes, refs) is removed before the error goes on, so no ref is left waiting without a
        token. owner is who may see the job (api.auth: a digest of the API key that made it; never
        the key) and the tenant its posters are scheduled as, with `weight`; a job without an owner
        is a tenant of its own. lane: Lane.INTERACTIVE for one-poster calls.
        """
        job_id = new_job_id()
        record = {"id": job_id, "status": JobStatus.QUEUED.value, "source": source, "total": len(items),
                  "done": 0, "failed": 0, "top_k": top_k or 0, "created_at": f"{time.time():.6f}",
                  "lane": lane.value, "tenant": owner or job_id}
        if owner:
            record["owner"] = owner
        try:
            self._write(record, items, blobs, weight)
            if enqueue is not None:
                enqueue(len(items))
        except BaseException:
            self._discard(record, [i for i, data in enumerate(blobs) if data is not None])
            raise
        # Built from what was written rather than read back: a read that failed now would answer
        # an error for a job that is queued and will run.
        return self._view(job_id, {key: str(value) for key, value in record.items()})

    def _write(self, record: dict, items: list[dict], blobs: list[bytes | None], weight: float) -> None:
        """Write a new job in one MULTI/EXEC, aborted if _discard has already marked its id."""
        job_id, keys = record["id"], self.keys
        # Unfinished jobs expire too, in case no worker ever comes: uploads first, the record later.
        ttl = self.settings.upload_ttl + self.settings.result_ttl
        with self.client.pipeline(transaction=True) as pipe:
            # An EXEC whose answer timed out may still run after _discard cleaned up; WATCH on the
            # mark _discard sets makes such a late EXEC write nothing.
            pipe.watch(keys.discarded(job_id))
            pipe.multi()
            pipe.hset(keys.job(job_id), mapping=record)
            pipe.expire(keys.job(job_id), ttl)
            for start, stop in _chunks(len(items)):
                chunk = {str(i): json.dumps(items[i]) for i in range(start, stop)}
                pipe.hset(keys.items(job_id), mapping=chunk)
            pipe.expire(keys.items(job_id), ttl)
            for index, data in enumerate(blobs):
                if data is not None:
                    pipe.set(keys.blob(job_id, index), data, ex=self.settings.upload_ttl)
            # Refs last and tokens only after EXEC: a token that runs finds its refs or an empty list.
            for start, stop in _chunks(len(items)):
                pipe.rpush(keys.ready(job_id), *[ref(job_id, i) for i in range(start, stop)])
            self.schedule.make_ready(pipe, job_id, Lane(record["lane"]), record["tenant"], len(items), weight)
            pipe.hincrby(keys.stats, LabelledCounter.JOBS_SUBMITTED.field(record["source"]), 1)
            # Redis does not roll back a transaction in which one command failed: the caller
            # discards what the others wrote.
            pipe.execute()

    def _discard(self, record: dict, blob_indexes: list[int]) -> None:
        """Remove what a failed submission wrote; its keys expire anyway if Redis cannot be reached."""
        keys, job_id = self.keys, record["id"]
        names = [keys.discarded(job_id), keys.job(job_id), keys.items(job_id), keys.results(job_id),
                 keys.done(job_id), keys.stats, *(keys.blob(job_id, i) for i in blob_indexes)]
        try:
            # Out of the queue first: a token already sent then finds nothing of this job to claim.
            removed = self.schedule.drop(job_id, record["lane"], record["tenant"])
            self._discard_script(keys=names, args=[_DISCARD_MARK_TTL,
                                                   LabelledCounter.JOBS_SUBMITTED.field(record["source"])])
        except redis.RedisError:
            # The record and bytes have TTLs; refs still waiting get tokens from the sweep.
            log.warning("could not remove the half-written job %s", job_id, exc_info=True)
            return
        log.info("submission of job %s failed: removed what it wrote (%d ready refs)", job_id, removed)

    def get(self, job_id: str) -> dict | None:
        """The job record with counts, progress and timings, or None when it is unknown."""
        raw = self.client.hgetall(self.keys.job(job_id))
        if not raw:
            return None
        return self._view(job_id, {k.decode(): v.decode() for k, v in raw.items()})

    @staticmethod
    def _view(job_id: str, data: dict[str, str]) -> dict:
        """The public shape of a job hash (its fields as strings)."""
        total, done, failed = int(data["total"]), int(data.get("done", 0)), int(data.get("failed", 0))
        created = float(data["created_at"])
        started = float(data["started_at"]) if "started_at" in data else None
        claimed = float(data["claimed_at"]) if "claimed_at" in data else None
        finished = float(data["finished_at"]) if "finished_at" in data else None
        elapsed = (finished or time.time()) - created
        return {
            "id": job_id,
            "status": data["status"],
            "source": data.get("source"),
            "total": total,
            "done": done,
            "failed": failed,
            "progress": 1.0 if total == 0 else round((done + failed) / total, 4),
            "top_k": int(data.get("top_k", 0)) or None,
            "model": json.loads(data["model"]) if "model" in data else None,
            "created_at": created,
            "claimed_at": claimed,
            "started_at": started,
            "finished_at": finished,
            "elapsed_s": round(elapsed, 3),
            "posters_per_second": round((done + failed) / elapsed, 2) if finished and elapsed > 0 else None,
        }

    def owner(self, job_id: str) -> str | None:
        """Who may see the job ("" when nobody in particular), or None when there is no such job."""
        owner, total = self.client.hmget(self.keys.job(job_id), ["owner", "total"])
        if total is None:
            return None
        return owner.decode() if owner is not None else ""

    def wait(self, job_id: str, timeout: float) -> dict | None:
        """The job once it is final, or as it stands after `timeout` seconds (None when unknown).

        Blocks on the job's done list instead of polling. BLMOVE from the list onto itself leaves
        the element in place, so every client waiting on the same job wakes, and a job that
        finished before the call returns at once.
        """
        job = self.get(job_id)
        if job is None or JobStatus(job["status"]).final or timeout <= 0:
            return job
        done = self.keys.done(job_id)
        # One blocking call may not outlast the client's socket timeout (redis-py would call the
        # silence a dead server), so a long wait blocks in slices of half of it.
        socket_timeout = self.client.connection_pool.connection_kwargs.get("socket_timeout")
        longest = socket_timeout / 2 if socket_timeout else timeout
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self.client.blmove(done, done, min(left, longest), "RIGHT", "LEFT") is not None:
                break
        return self.get(job_id)

    def results(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[dict]:
        """Items offset..offset+limit in submission order, each with its result once it has one."""
        total = int(self.client.hget(self.keys.job(job_id), "total") or 0)
        stop = total if limit is None else min(total, offset + limit)
        found = []
        for start, end in _chunks(stop, offset):
            fields = [str(i) for i in range(start, end)]
            items = self.client.hmget(self.keys.items(job_id), fields)
            results = self.client.hmget(self.keys.results(job_id), fields)
            for index, item, result in zip(fields, items, results, strict=True):
                if result is not None:
                    found.append(json.loads(result))
                elif item is not None:
                    found.append({"index": int(index), "name": json.loads(item)["name"],
                                  "status": ResultStatus.PENDING.value})
        return found

    def cancel(self, job_id: str) -> dict | None:
        """Cancel what has not run and delete the job's items, upload bytes and results.

        The job record itself stays (status, counts, timings) until the result TTL ends, so a
        poller learns what happened instead of a bare 404.
        """
        key = self.keys.job(job_id)
        total, status, lane, tenant = self.client.hmget(key, ["total", "status", "lane", "tenant"])
        if total is None:
            return None
        status = status.decode()
        if lane is not None and tenant is not None:
            # Its waiting posters leave the queue at once: they no longer count against anybody.
            self.schedule.drop(job_id, lane.decode(), tenant.decode())
        pipe = self.client.pipeline(transaction=True)
        if not JobStatus(status).final:
            pipe.hset(key, mapping={"status": JobStatus.CANCELLED.value, "finished_at": f"{time.time():.6f}"})
            pipe.hincrby(self.keys.stats, LabelledCounter.JOBS_FINISHED.field(JobStatus.CANCELLED.value), 1)
            pipe.rpush(self.keys.done(job_id), JobStatus.CANCELLED.value)
            pipe.expire(self.keys.done(job_id), self.settings.result_ttl)
        pipe.delete(self.keys.items(job_id), self.keys.results(job_id))
        pipe.expire(key, self.settings.result_ttl)
        pipe.execute()
        # Refs of a cancelled job already in a batch are skipped by the worker that runs it.
        for start, stop in _chunks(int(total)):
            self.client.delete(*[self.keys.blob(job_id, i) for i in range(start, stop)])
        return self.get(job_id)

    def load(self, refs: list[tuple[str, int]]) -> list[dict | None]:
        """Each ref's item with its job's top_k and, for uploads, its bytes; None when its job is gone."""
        pipe = self.client.pipeline(transaction=False)
        for job_id, index in refs:
            pipe.hmget(self.keys.job(job_id), ["status", "top_k"])
            pipe.hget(self.keys.items(job_id), str(index))
            pipe.get(self.keys.blob(job_id, index))
        answers = pipe.execute()
        return [loaded_item(job_id, index, *answers[3 * n], *answers[3 * n + 1: 3 * n + 3])
                for n, (job_id, index) in enumerate(refs)]

    def queue_ages(self) -> tuple[dict[str, float], dict[str, float]]:
        """Seconds the oldest poster still waiting has waited since its job came, by lane and by tenant."""
        waiting = self.schedule.waiting_jobs()
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


def loaded_item(job_id: str, index: int, status: bytes | None, top_k: bytes | None, item: bytes | None,
                blob: bytes | None) -> dict | None:
    """A ref's item with its job's top_k and bytes, as a worker classifies it; None when its job is gone."""
    if status is None or item is None or JobStatus(status.decode()).final:
        return None
    entry = json.loads(item)
    entry.update(job_id=job_id, index=index, top_k=int(top_k or 0) or None, data=blob)
    return entry


def _chunks(stop: int, start: int = 0):
    # (start, end) pairs covering start..stop in steps of _CHUNK.
    return [(i, min(i + _CHUNK, stop)) for i in range(start, stop, _CHUNK)]

