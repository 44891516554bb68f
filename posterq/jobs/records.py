"""Job records: create a job with its items and upload bytes, read its state and results, cancel it."""

import json
import time
import uuid

import redis

from posterq.config import Settings
from posterq.jobs.schema import JobStatus, Keys, ResultStatus, ref

# Fields per HSET/RPUSH call, so that a 10,000-poster job is not one giant command.
_CHUNK = 1000


class Jobs:
    """The job hashes, their items, results and upload bytes."""

    def __init__(self, client: redis.Redis, settings: Settings, keys: Keys):
        self.client, self.settings, self.keys = client, settings, keys

    def create(self, source: str, items: list[dict], blobs: list[bytes | None],
               top_k: int | None = None) -> dict:
        """Store a job, its items and upload bytes, and put its refs on the ready list."""
        job_id = uuid.uuid4().hex
        keys = self.keys
        # Unfinished jobs expire too, in case no worker ever comes: uploads first, the record later.
        ttl = self.settings.upload_ttl + self.settings.result_ttl
        record = {"id": job_id, "status": JobStatus.QUEUED.value, "source": source, "total": len(items),
                  "done": 0, "failed": 0, "top_k": top_k or 0, "created_at": f"{time.time():.6f}"}
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(keys.job(job_id), mapping=record)
        pipe.expire(keys.job(job_id), ttl)
        for start, stop in _chunks(len(items)):
            pipe.hset(keys.items(job_id), mapping={str(i): json.dumps(items[i]) for i in range(start, stop)})
        pipe.expire(keys.items(job_id), ttl)
        for index, data in enumerate(blobs):
            if data is not None:
                pipe.set(keys.blob(job_id, index), data, ex=self.settings.upload_ttl)
        for start, stop in _chunks(len(items)):
            pipe.rpush(keys.ready, *[ref(job_id, i) for i in range(start, stop)])
        pipe.hincrby(keys.stats, f"jobs_submitted:{source}", 1)
        pipe.execute()
        return self.get(job_id)

    def get(self, job_id: str) -> dict | None:
        """The job record with counts, progress and timings, or None when it is unknown."""
        raw = self.client.hgetall(self.keys.job(job_id))
        if not raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}
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
        rows = []
        for start, end in _chunks(stop, offset):
            fields = [str(i) for i in range(start, end)]
            items = self.client.hmget(self.keys.items(job_id), fields)
            results = self.client.hmget(self.keys.results(job_id), fields)
            for index, item, result in zip(fields, items, results, strict=True):
                if result is not None:
                    rows.append(json.loads(result))
                elif item is not None:
                    rows.append({"index": int(index), "name": json.loads(item)["name"],
                                 "status": ResultStatus.PENDING.value})
        return rows

    def cancel(self, job_id: str) -> dict | None:
        """Cancel what has not run and delete the job's items, upload bytes and results.

        The job record itself stays (status, counts, timings) until the result TTL ends, so a
        poller learns what happened instead of a bare 404.
        """
        key = self.keys.job(job_id)
        total = self.client.hget(key, "total")
        if total is None:
            return None
        status = self.client.hget(key, "status").decode()
        pipe = self.client.pipeline(transaction=True)
        if not JobStatus(status).final:
            pipe.hset(key, mapping={"status": JobStatus.CANCELLED.value, "finished_at": f"{time.time():.6f}"})
            pipe.hincrby(self.keys.stats, f"jobs_finished:{JobStatus.CANCELLED.value}", 1)
            pipe.rpush(self.keys.done(job_id), JobStatus.CANCELLED.value)
            pipe.expire(self.keys.done(job_id), self.settings.result_ttl)
        pipe.delete(self.keys.items(job_id), self.keys.results(job_id))
        pipe.expire(key, self.settings.result_ttl)
        pipe.execute()
        # Refs of a cancelled job left on the ready list are skipped by the worker that claims them.
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
        loaded = []
        for position, (job_id, index) in enumerate(refs):
            (status, top_k), item, blob = answers[3 * position: 3 * position + 3]
            if status is None or item is None or JobStatus(status.decode()).final:
                loaded.append(None)
                continue
            entry = json.loads(item)
            entry.update(job_id=job_id, index=index, top_k=int(top_k or 0) or None, data=blob)
            loaded.append(entry)
        return loaded


def _chunks(stop: int, start: int = 0):
    # (start, end) pairs covering start..stop in steps of _CHUNK.
    return [(i, min(i + _CHUNK, stop)) for i in range(start, stop, _CHUNK)]

