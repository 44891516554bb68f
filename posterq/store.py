"""The job store: every Redis key posterq writes, job and result records, batches and counters.

Schema (prefix P, default "posterq"; all names are built by `Keys`):

    P:job:<id>            hash   id, status, source, total, done, failed, top_k, model, *_at
    P:job:<id>:items      hash   index -> {"name", "kind": "upload"|"path", "path"?}
    P:job:<id>:results    hash   index -> result JSON (written once: HSETNX)
    P:job:<id>:blob:<i>   string upload bytes, TTL upload_ttl, deleted once classified
    P:ready               list   "<id>:<index>" refs waiting for a batch
    P:batch:<task id>     list   refs one Celery task claimed (its redelivery finds the same ones)
    P:batch:<task id>:n   string deliveries of that task so far
    P:worker:<hostname>   string heartbeat JSON, TTL 3 heartbeats
    P:stats               hash   counters and histogram buckets behind /metrics
"""

import json
import logging
import time
import uuid
from dataclasses import dataclass
from enum import Enum

import redis

from posterq.config import Settings

log = logging.getLogger(__name__)

# Histogram bucket bounds (upper, inclusive) of the figures /metrics reports.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
BATCH_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
JOB_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class JobStatus(str, Enum):
    """Where a job stands; done/failed/cancelled are final."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # finished, but not one poster could be classified
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True once nothing more will happen to the job."""
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


class ItemKind(str, Enum):
    """Where a poster's bytes are: uploaded into Redis, or a file under a data root."""

    UPLOAD = "upload"
    PATH = "path"


@dataclass(frozen=True)
class Keys:
    """The one place Redis key names are built."""

    prefix: str = "posterq"

    def job(self, job_id: str) -> str:
        """The job's hash."""
        return f"{self.prefix}:job:{job_id}"

    def items(self, job_id: str) -> str:
        """The job's items, by index."""
        return f"{self.prefix}:job:{job_id}:items"

    def results(self, job_id: str) -> str:
        """The job's results, by index."""
        return f"{self.prefix}:job:{job_id}:results"

    def blob(self, job_id: str, index: int) -> str:
        """One uploaded poster's bytes."""
        return f"{self.prefix}:job:{job_id}:blob:{index}"

    @property
    def ready(self) -> str:
        """Refs waiting to be claimed by a batch."""
        return f"{self.prefix}:ready"

    def batch(self, batch_id: str) -> str:
        """Refs one batch task claimed."""
        return f"{self.prefix}:batch:{batch_id}"

    def deliveries(self, batch_id: str) -> str:
        """How often one batch task has started."""
        return f"{self.prefix}:batch:{batch_id}:n"

    def worker(self, hostname: str) -> str:
        """One worker's heartbeat."""
        return f"{self.prefix}:worker:{hostname}"

    @property
    def stats(self) -> str:
        """Counters and histograms."""
        return f"{self.prefix}:stats"


def ref(job_id: str, index: int) -> str:
    """The ready-list reference of one item."""
    return f"{job_id}:{index}"


def parse_ref(value: bytes | str) -> tuple[str, int]:
    """Split a ready-list reference into (job id, index)."""
    text = value.decode() if isinstance(value, bytes) else value
    job_id, _, index = text.rpartition(":")
    return job_id, int(index)


# Tops a batch list up to ARGV[1] refs from the ready list atomically, so a ref is always in
# exactly one of the two (never lost between a pop and a push if the worker dies).
_CLAIM = """
local moved = 0
for i = 1, tonumber(ARGV[1]) - redis.call('LLEN', KEYS[2]) do
  if not redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') then break end
  moved = moved + 1
end
if moved > 0 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return redis.call('LRANGE', KEYS[2], 0, -1)
"""

# Writes results once each. A result counts only when HSETNX created it, so a redelivered batch
# (or two workers racing on one visibility-timeout restore) never counts a poster twice. Keys are
# derived from ARGV because the items of one batch belong to many jobs.
# ARGV: prefix, result_ttl, model json, then triples (job id, index, result json, outcome).
_WRITE = """
local prefix, ttl, model = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local stats = prefix .. ':stats'
local now = redis.call('TIME')
local stamp = string.format('%d.%06d', now[1], now[2])
local finished = {}
for i = 4, #ARGV, 4 do
  local id, index, result, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local job = prefix .. ':job:' .. id
  redis.call('DEL', job .. ':blob:' .. index)
  local status = redis.call('HGET', job, 'status')
  if status == 'queued' or status == 'running' then
    if redis.call('HSETNX', job .. ':results', index, result) == 1 then
      if outcome == 'ok' then redis.call('HINCRBY', job, 'done', 1)
      else redis.call('HINCRBY', job, 'failed', 1) end
      redis.call('HINCRBY', stats, 'posters:' .. outcome, 1)
      if model ~= '{}' then redis.call('HSETNX', job, 'model', model) end
      if status == 'queued' then
        redis.call('HSET', job, 'status', 'running')
        redis.call('HSETNX', job, 'started_at', stamp)
      end
      local counts = redis.call('HMGET', job, 'done', 'failed', 'total', 'created_at')
      local done, failed, total = tonumber(counts[1]), tonumber(counts[2]), tonumber(counts[3])
      if done + failed >= total then
        local final = 'done'
        if done == 0 then final = 'failed' end
        redis.call('HSET', job, 'status', final, 'finished_at', stamp)
        for _, key in ipairs({job, job .. ':items', job .. ':results'}) do
          redis.call('EXPIRE', key, ttl)
        end
        redis.call('HINCRBY', stats, 'jobs_finished:' .. final, 1)
        table.insert(finished, id)
        table.insert(finished, tostring(tonumber(stamp) - tonumber(counts[4])))
      end
    end
  end
end
return finished
"""


class JobStore:
    """Jobs, items, results, batches and counters in Redis."""

    def __init__(self, client: redis.Redis, settings: Settings):
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._claim = client.register_script(_CLAIM)
        self._write = client.register_script(_WRITE)

    @classmethod
    def from_settings(cls, settings: Settings) -> "JobStore":
        """Connect to settings.redis_url."""
        return cls(redis.Redis.from_url(settings.redis_url, health_check_interval=30), settings)

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    # -- jobs --------------------------------------------------------------------------------

    def create_job(self, source: str, items: list[dict], blobs: list[bytes | None],
                   top_k: int | None = None) -> dict:
        """Store a job, its items and upload bytes, and put its refs on the ready list."""
        job_id = uuid.uuid4().hex
        keys = self.keys
        now = f"{time.time():.6f}"
        # Unfinished jobs expire too, in case no worker ever comes: uploads first, the record later.
        ttl = self.settings.upload_ttl + self.settings.result_ttl
        record = {"id": job_id, "status": JobStatus.QUEUED.value, "source": source, "total": len(items),
                  "done": 0, "failed": 0, "top_k": top_k or 0, "created_at": now}
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(keys.job(job_id), mapping=record)
        pipe.expire(keys.job(job_id), ttl)
        for start in range(0, len(items), 1000):
            chunk = {str(i): json.dumps(items[i]) for i in range(start, min(start + 1000, len(items)))}
            pipe.hset(keys.items(job_id), mapping=chunk)
        pipe.expire(keys.items(job_id), ttl)
        for index, data in enumerate(blobs):
            if data is not None:
                pipe.set(keys.blob(job_id, index), data, ex=self.settings.upload_ttl)
        for start in range(0, len(items), 1000):
            pipe.rpush(keys.ready, *[ref(job_id, i) for i in range(start, min(start + 1000, len(items)))])
        pipe.hincrby(keys.stats, f"jobs_submitted:{source}", 1)
        pipe.execute()
        if not items:
            self._finish_empty(job_id)
        return self.get_job(job_id)

    def _finish_empty(self, job_id: str) -> None:
        self.client.hset(self.keys.job(job_id), mapping={
            "status": JobStatus.DONE.value, "finished_at": f"{time.time():.6f}"})

    def get_job(self, job_id: str) -> dict | None:
        """The job record with counts, progress and timings, or None when it is unknown."""
        raw = self.client.hgetall(self.keys.job(job_id))
        if not raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}
        total, done, failed = int(data["total"]), int(data.get("done", 0)), int(data.get("failed", 0))
        created = float(data["created_at"])
        started = float(data["started_at"]) if "started_at" in data else None
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
            "started_at": started,
            "finished_at": finished,
            "elapsed_s": round(elapsed, 3),
            "posters_per_second": round((done + failed) / elapsed, 2) if finished and elapsed > 0 else None,
        }

    def get_results(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[dict]:
        """Items offset..offset+limit in submission order, each with its result once it has one."""
        total = int(self.client.hget(self.keys.job(job_id), "total") or 0)
        stop = total if limit is None else min(total, offset + limit)
        rows = []
        for start in range(offset, stop, 1000):
            fields = [str(i) for i in range(start, min(start + 1000, stop))]
            items = self.client.hmget(self.keys.items(job_id), fields)
            results = self.client.hmget(self.keys.results(job_id), fields)
            for index, item, result in zip(fields, items, results):
                if result is not None:
                    rows.append(json.loads(result))
                elif item is not None:
                    rows.append({"index": int(index), "name": json.loads(item)["name"], "status": "pending"})
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
            pipe.hincrby(self.keys.stats, "jobs_finished:cancelled", 1)
        pipe.delete(self.keys.items(job_id), self.keys.results(job_id))
        pipe.expire(key, self.settings.result_ttl)
        pipe.execute()
        # Refs of a cancelled job left on the ready list are skipped by the worker that claims them.
        blob_keys = [self.keys.blob(job_id, i) for i in range(int(total))]
        for start in range(0, len(blob_keys), 1000):
            self.client.delete(*blob_keys[start:start + 1000])
        return self.get_job(job_id)

    # -- batches (worker side) ---------------------------------------------------------------

    def start_batch(self, batch_id: str) -> int:
        """Count one more delivery of a batch task; return how many there have been."""
        key = self.keys.deliveries(batch_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, self.settings.result_ttl)
        count = pipe.execute()[0]
        if count > 1:
            self.client.hincrby(self.keys.stats, "redeliveries", 1)
        return count

    def claimed(self, batch_id: str) -> list[tuple[str, int]]:
        """The refs a batch task has claimed so far (non-empty on a redelivery)."""
        return [parse_ref(v) for v in self.client.lrange(self.keys.batch(batch_id), 0, -1)]

    def claim(self, batch_id: str, size: int, max_wait: float) -> list[tuple[str, int]]:
        """Fill a batch to `size` refs from the ready list, waiting up to max_wait for stragglers.

        A batch that has nothing is done at once (its posters went into another batch); one that
        has some but fewer than `size` waits a little so that small jobs arriving together share
        one interpreter invoke.
        """
        ttl = self.settings.result_ttl
        batch_key = self.keys.batch(batch_id)
        refs = self._claim(keys=[self.keys.ready, batch_key], args=[size, ttl])
        deadline = time.monotonic() + max_wait
        while refs and len(refs) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self.client.blmove(self.keys.ready, batch_key, left, "LEFT", "RIGHT") is None:
                break
            refs = self._claim(keys=[self.keys.ready, batch_key], args=[size, ttl])
        return [parse_ref(v) for v in refs]

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

    def write_results(self, rows: list[tuple[str, int, dict, str]], model: dict) -> list[tuple[str, float]]:
        """Write (job id, index, result, outcome) rows once each; return jobs this finished, with seconds."""
        if not rows:
            return []
        args = [self.settings.key_prefix, self.settings.result_ttl, json.dumps(model)]
        for job_id, index, result, outcome in rows:
            args += [job_id, index, json.dumps(result), outcome]
        finished = self._write(keys=[], args=args)
        pairs = [(finished[i].decode(), float(finished[i + 1])) for i in range(0, len(finished), 2)]
        for _, seconds in pairs:
            self.observe("job_seconds", seconds, JOB_SECONDS_BUCKETS)
        return pairs

    def finish_batch(self, batch_id: str) -> None:
        """Forget a batch whose results are all written."""
        self.client.delete(self.keys.batch(batch_id), self.keys.deliveries(batch_id))

    # -- workers and metrics -----------------------------------------------------------------

    def heartbeat(self, hostname: str, info: dict) -> None:
        """Say that a worker is alive, for a few heartbeat intervals."""
        ttl = max(1, int(3 * self.settings.heartbeat_interval + 0.999))
        self.client.set(self.keys.worker(hostname), json.dumps({**info, "seen_at": time.time()}), ex=ttl)

    def forget_worker(self, hostname: str) -> None:
        """Remove a worker's heartbeat when it shuts down cleanly."""
        self.client.delete(self.keys.worker(hostname))

    def workers(self) -> dict[str, dict]:
        """Live workers by hostname, from their heartbeats."""
        pattern = self.keys.worker("*")
        names = list(self.client.scan_iter(match=pattern, count=100))
        values = self.client.mget(names) if names else []
        skip = len(self.keys.worker(""))
        return {name.decode()[skip:]: json.loads(value) for name, value in zip(names, values) if value}

    def queue_depth(self) -> int:
        """Posters waiting for a batch."""
        return int(self.client.llen(self.keys.ready))

    def observe(self, name: str, value: float, buckets: tuple) -> None:
        """Add one observation to a histogram kept in the stats hash."""
        bound = next((b for b in buckets if value <= b), "+Inf")
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(self.keys.stats, f"{name}_bucket:{bound}", 1)
        pipe.hincrbyfloat(self.keys.stats, f"{name}_sum", value)
        pipe.hincrby(self.keys.stats, f"{name}_count", 1)
        pipe.execute()

    def count(self, name: str, amount: int = 1) -> None:
        """Add to a counter in the stats hash."""
        self.client.hincrby(self.keys.stats, name, amount)

    def stats(self) -> dict[str, float]:
        """Every counter and histogram field, as numbers."""
        return {k.decode(): float(v) for k, v in self.client.hgetall(self.keys.stats).items()}
