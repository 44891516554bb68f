"""Batches on the worker side: claim ready refs fairly and atomically, write results once, forget them."""

import json
import time

import redis

from posterq.config import Settings
from posterq.jobs.jobs import loaded_item
from posterq.jobs.schedule import Schedule
from posterq.jobs.schema import JobStatus, Keys, ResultStatus, parse_ref, ref
from posterq.jobs.stats import Counter, LabelledCounter

# Writes results once each. A result counts only when HSETNX created it, so a redelivered batch
# (or two workers racing on one visibility-timeout restore) never counts a poster twice.
# A job that becomes final gets one element on its done list, which wakes every waiter (see
# Jobs.wait). KEYS: the stats hash, the sweep's attempts hash, then per outcome its job hash, items,
# results, done list and blob.
# ARGV: result ttl, model json, the statuses queued, running, done, failed and the outcome ok,
# when the batch was claimed, the stats fields' prefixes for posters by outcome and jobs finished
# by status (posterq.jobs.stats), then per outcome (job id, index, result json, outcome).
_WRITE = """
local ttl, model = tonumber(ARGV[1]), ARGV[2]
local queued, running, done_status, failed_status, ok = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local claimed_at, posters_by, finished_by = ARGV[8], ARGV[9], ARGV[10]
local stats, attempts = KEYS[1], KEYS[2]
local now = redis.call('TIME')
local stamp = string.format('%d.%06d', now[1], now[2])
local finished = {}
for n = 0, (#KEYS - 2) / 5 - 1 do
  local job, items, results = KEYS[3 + 5 * n], KEYS[4 + 5 * n], KEYS[5 + 5 * n]
  local done_list, blob = KEYS[6 + 5 * n], KEYS[7 + 5 * n]
  local id, index = ARGV[11 + 4 * n], ARGV[12 + 4 * n]
  local result, outcome = ARGV[13 + 4 * n], ARGV[14 + 4 * n]
  redis.call('DEL', blob)
  redis.call('HDEL', attempts, id .. ':' .. index)
  local status = redis.call('HGET', job, 'status')
  if status == queued or status == running then
    if redis.call('HSETNX', results, index, result) == 1 then
      if outcome == ok then redis.call('HINCRBY', job, 'done', 1)
      else redis.call('HINCRBY', job, 'failed', 1) end
      redis.call('HINCRBY', stats, posters_by .. outcome, 1)
      if model ~= '{}' then redis.call('HSETNX', job, 'model', model) end
      if status == queued then
        redis.call('HSET', job, 'status', running)
        redis.call('HSETNX', job, 'started_at', stamp)
        redis.call('HSETNX', job, 'claimed_at', claimed_at)
      end
      local counts = redis.call('HMGET', job, 'done', 'failed', 'total', 'created_at')
      local done, failed, total = tonumber(counts[1]), tonumber(counts[2]), tonumber(counts[3])
      if done + failed >= total then
        local final = done_status
        if done == 0 then final = failed_status end
        redis.call('HSET', job, 'status', final, 'finished_at', stamp)
        redis.call('RPUSH', done_list, final)
        for _, key in ipairs({job, items, results, done_list}) do
          redis.call('EXPIRE', key, ttl)
        end
        redis.call('HINCRBY', stats, finished_by .. final, 1)
        table.insert(finished, id)
        table.insert(finished, tostring(tonumber(stamp) - tonumber(counts[4])))
      end
    end
  end
end
return finished
"""


class Batches:
    """The per-task batch lists the workers claim into from the fair queue."""

    def __init__(self, client: redis.Redis, settings: Settings, keys: Keys, schedule: Schedule):
        self.client, self.settings, self.keys, self.schedule = client, settings, keys, schedule
        self._write = client.register_script(_WRITE)

    def count_delivery(self, batch_id: str) -> int:
        """Count one more delivery of a batch task; return how many there have been."""
        key = self.keys.deliveries(batch_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, self.settings.result_ttl)
        count = pipe.execute()[0]
        if count > 1:
            self.client.hincrby(self.keys.stats, Counter.REDELIVERIES.value, 1)
        return count

    def claimed(self, batch_id: str) -> list[tuple[str, int]]:
        """The refs a batch task has claimed so far (non-empty on a redelivery)."""
        return [parse_ref(v) for v in self.client.lrange(self.keys.batch(batch_id), 0, -1)]

    def claim(self, batch_id: str, size: int, max_wait: float) -> list[tuple[str, int]]:
        """The refs of claim_items alone."""
        return self.claim_items(batch_id, size, max_wait)[0]

    def claim_items(self, batch_id: str, size: int, max_wait: float
                    ) -> tuple[list[tuple[str, int]], list[dict]]:
        """Fill a batch to `size` refs fairly, reading their items in the same round trip: (refs, items).

        The items are those whose jobs still wait for them (not cancelled, finished or expired). A
        batch that has nothing is done at once (its posters went into another batch); one that has
        some but fewer than `size` waits up to max_wait so that small jobs arriving together share
        one interpreter invoke.
        """
        refs, loaded = self.schedule.claim(batch_id, size)
        deadline = time.monotonic() + max_wait
        while refs and len(refs) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not self.schedule.wait_for_arrivals(left):
                break
            refs, loaded = self.schedule.claim(batch_id, size)
        refs = [parse_ref(v) for v in refs]
        items = [loaded_item(job_id, index, *loaded[4 * n: 4 * n + 4])
                 for n, (job_id, index) in enumerate(refs)]
        return refs, [item for item in items if item is not None]

    def write_results(self, outcomes: list[tuple[str, int, dict, str]], model: dict,
                      claimed_at: float | None = None) -> list[tuple[str, float]]:
        """Write (job id, index, result, outcome) outcomes once each; return jobs this finished, with seconds.

        `claimed_at` (epoch seconds) becomes the claimed_at of each job this batch starts, so a
        job tells how long it waited in the queue apart from how long it took.
        """
        if not outcomes:
            return []
        keys = [self.keys.stats, self.keys.attempts]
        args = [self.settings.result_ttl, json.dumps(model), JobStatus.QUEUED.value, JobStatus.RUNNING.value,
                JobStatus.DONE.value, JobStatus.FAILED.value, ResultStatus.OK.value,
                f"{claimed_at or time.time():.6f}", LabelledCounter.POSTERS.prefix,
                LabelledCounter.JOBS_FINISHED.prefix]
        for job_id, index, result, outcome in outcomes:
            keys += [self.keys.job(job_id), self.keys.items(job_id), self.keys.results(job_id),
                     self.keys.done(job_id), self.keys.blob(job_id, index)]
            args += [job_id, index, json.dumps(result), outcome]
        finished = self._write(keys=keys, args=args)
        return [(finished[i].decode(), float(finished[i + 1])) for i in range(0, len(finished), 2)]

    def finish(self, batch_id: str) -> None:
        """Forget a batch whose results are all written."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.batch(batch_id), self.keys.deliveries(batch_id))
        pipe.zrem(self.keys.claims, batch_id)
        pipe.execute()

    def stale(self, older_than: float) -> list[str]:
        """Task ids whose claim is older than `older_than` seconds: their task died or was lost."""
        stale = self.client.zrangebyscore(self.keys.claims, "-inf", self._now() - older_than)
        return [value.decode() for value in stale]

    def give_back(self, batch_id: str, older_than: float) -> int | None:
        """Put a stale batch's refs back at the head of their jobs' lists; return how many, None if it lives.

        Refs given back more than max_redeliveries times go to the poisoned list instead; refs of
        jobs that are gone or final are dropped.
        """
        final = [status.value for status in JobStatus if status.final]
        ready = self.schedule.give_back(batch_id, older_than, final)
        return None if ready < 0 else ready

    def poisoned(self) -> list[tuple[str, int]]:
        """Refs given back too often, waiting to be failed."""
        return [parse_ref(v) for v in self.client.lrange(self.keys.poisoned, 0, -1)]

    def forget_poisoned(self, refs: list[tuple[str, int]]) -> None:
        """Drop failed refs from the poisoned list and their give-back counts."""
        pipe = self.client.pipeline(transaction=True)
        for job_id, index in refs:
            pipe.lrem(self.keys.poisoned, 0, ref(job_id, index))
            pipe.hdel(self.keys.attempts, ref(job_id, index))
        pipe.execute()

    def idle_seconds(self) -> float:
        """Seconds since any batch claimed a ref (infinite when none ever did)."""
        last = self.client.get(self.keys.claimed_at)
        return float("inf") if last is None else self._now() - float(last)

    def _now(self) -> float:
        # Redis's clock, the one the scripts stamp claims with: worker hosts' clocks may differ.
        seconds, microseconds = self.client.time()
        return seconds + microseconds / 1e6

    def lock_sweep(self, seconds: float) -> bool:
        """Take the sweep for `seconds` (one sweeper at a time across every worker); False if taken."""
        return bool(self.client.set(self.keys.sweep, "1", nx=True, ex=max(1, int(seconds))))

    def queue_depth(self) -> int:
        """Posters waiting for a batch."""
        return self.schedule.depth()
