"""Batches on the worker side: claim ready refs fairly and atomically, write results once, forget them."""

import collections
import time

import redis

from posterq.config import Settings
from posterq.jobs.keys import JobStatus, Keys, parse_ref, ref
from posterq.jobs.ledger import Finished, Ledger
from posterq.jobs.records import Jobs, loaded_item
from posterq.jobs.schedule import Schedule
from posterq.jobs.stats import Counter, LabelledCounter


class Batches:
    """The per-task batch lists the workers claim into from the fair queue."""

    def __init__(self, client: redis.Redis, settings: Settings, keys: Keys, schedule: Schedule,
                 jobs: Jobs):
        self.client, self.settings, self.keys = client, settings, keys
        self.schedule, self.jobs = schedule, jobs
        self.ledger: Ledger = jobs.ledger

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

    def uncount_delivery(self, batch_id: str) -> None:
        """Take back one delivery's count: it failed for no fault of the batch's (a database down)."""
        self.client.decr(self.keys.deliveries(batch_id))

    def touch(self, batch_id: str) -> None:
        """Stamp a batch's claim fresh: its task lives and waits (for the database); the sweep leaves it."""
        self.client.zadd(self.keys.claims, {batch_id: self._now()}, xx=True)

    def claimed(self, batch_id: str) -> list[tuple[str, int]]:
        """The refs a batch task has claimed so far (non-empty on a redelivery)."""
        return [parse_ref(v) for v in self.client.lrange(self.keys.batch(batch_id), 0, -1)]

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
                      claimed_at: float | None = None) -> list[Finished]:
        """Write (job id, index, result, outcome) outcomes once each; return the jobs this finished.

        The ledger first (one transaction: the rows and the jobs' counts), then Redis forgets the
        items and bytes and wakes the waiters of finished jobs. A delivery that dies between the
        two is delivered again: its rows are no longer pending, so it writes nothing twice, and it
        then forgets the items. `claimed_at` (epoch seconds) becomes the claimed_at of each job this
        batch starts, so a job tells how long it waited in the queue apart from how long it took.
        Raises DatabaseUnavailable (nothing written) when the database cannot be reached.
        """
        if not outcomes:
            return []
        written, finished = self.ledger.write(outcomes, model, claimed_at or time.time())
        indexes: dict[str, list[int]] = {}
        for job_id, index, _, _ in outcomes:
            indexes.setdefault(job_id, []).append(index)
        # A few commands a batch, whatever its size: one per job and one per outcome kind.
        pipe = self.client.pipeline(transaction=False)
        for job_id, found in indexes.items():
            pipe.delete(*[self.keys.blob(job_id, index) for index in found])
            pipe.hdel(self.keys.items(job_id), *found)
        pipe.hdel(self.keys.attempts, *[ref(job_id, index) for job_id, index, _, _ in outcomes])
        for outcome, count in collections.Counter(outcome for _, _, _, outcome in written).items():
            pipe.hincrby(self.keys.stats, LabelledCounter.POSTERS.field(outcome), count)
        for job in finished:
            self.jobs.finished(pipe, job.job_id, job.status)
        pipe.execute()
        return finished

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
