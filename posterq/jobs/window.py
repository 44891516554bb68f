"""The window: a directory job's next posters, moved from the ledger into Redis as workers drain them.

A folder of a million posters is a million pending rows in the database, not a million refs in
Redis: Redis holds at most `job_window` of a job's posters ready (plus those in running batches).
Whoever notices the window half empty tops it up (the enumeration after each chunk, a worker
after each batch, the sweep): the job's `fed` field is the last index made ready, and the top-up
is one MULTI/EXEC watched on the job's hash, so two top-ups racing make each poster ready once.
"""

import json
import logging

import redis

from posterq.config import Settings
from posterq.jobs.fair_queue import FairQueue
from posterq.jobs.keys import FINAL_STATUSES, ItemKind, JobStatus, Keys, Lane, job_hash, ref
from posterq.jobs.ledger import Ledger

log = logging.getLogger(__name__)


class Window:
    """Tops up directory jobs' ready posters from the ledger."""

    def __init__(self, client: redis.Redis, settings: Settings, keys: Keys, fair_queue: FairQueue,
                 ledger: Ledger):
        self.client, self.settings, self.keys = client, settings, keys
        self.fair_queue, self.ledger = fair_queue, ledger

    def top_up(self, job_id: str) -> int:
        """Make the job's next pending posters ready until its window is full; return how many.

        Does nothing while the window is more than half full, so that a worker's check after
        each batch costs one LLEN.
        """
        size = self.settings.job_window
        if self.client.llen(self.keys.ready(job_id)) > size // 2:
            return 0
        key = self.keys.job(job_id)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.watch(key)
            # Read after WATCH: a top-up whose EXEC came in between has moved `fed` on and filled the
            # list, and this one must see both, or the window would hold more than its size.
            ready = pipe.llen(self.keys.ready(job_id))
            status, fed, lane, tenant = pipe.hmget(key, ["status", "fed", "lane", "tenant"])
            if status is None or JobStatus(status.decode()) in FINAL_STATUSES:
                return 0
            rows = self.ledger.pending_after(job_id, int(fed if fed is not None else -1), size - ready)
            if not rows:
                return 0
            pipe.multi()
            items = {str(index): json.dumps(_item(name, path)) for index, name, path in rows}
            pipe.hset(self.keys.items(job_id), mapping=items)
            pipe.rpush(self.keys.ready(job_id), *[ref(job_id, index) for index, _, _ in rows])
            pipe.hset(key, "fed", rows[-1][0])
            self.fair_queue.make_ready(pipe, job_id, Lane(lane.decode()), tenant.decode(), len(rows))
            try:
                pipe.execute()
            except redis.WatchError:
                return 0  # another top-up (or a cancel) got there first
        return len(rows)

    def restore(self, job: dict) -> bool:
        """Rebuild the Redis hash of a job the ledger still runs (Redis lost it); True when it did.

        Its ready posters are made ready again from the ledger's pending rows by the next top-up;
        upload bytes that Redis lost fail with `upload_expired`.
        """
        key = self.keys.job(job["id"])
        fields = job_hash(job, fed=-1)
        if not self.client.hsetnx(key, "id", job["id"]):
            return False
        self.client.hset(key, mapping=fields)
        self.client.expire(key, self.settings.upload_ttl + self.settings.result_ttl)
        log.warning("job %s: its state in Redis was lost; rebuilt from the database", job["id"])
        return True


def _item(name: str, path: str | None) -> dict:
    # A directory item names its file; an upload's row has no path (its bytes are in Redis, or lost).
    if path is None:
        return {"name": name, "kind": ItemKind.UPLOAD.value}
    return {"name": name, "kind": ItemKind.PATH.value, "path": path}
