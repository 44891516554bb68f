"""The claims registry: what batch tasks hold, and what becomes of it when they die.

A batch task (a Celery token) claims ready posters from the fair queue into a list named after
its task id, stamped in the claims set. It owns, in Redis (key layout: posterq.jobs.keys):

- the batch lists and the claims set: a killed worker's task is delivered again with the same
  id, finds its list, and classifies the same posters;
- one attempt count per poster, counted by each delivery that claims it (on its first claim, the
  posters an earlier delivery of the task left in the list too). A poster claimed more than
  `1 + max_redeliveries` times is failed with `redelivered_too_often` instead of classified
  (poison), whether its task kept dying and came back or the sweep kept giving it back; a
  delivery that failed because the database was down takes its count back (forgive);
- give-back: the sweep puts the posters of a batch whose task is gone back at the head of their
  jobs' ready lists, and keeps those whose next claim would fail them, to fail them itself;
- the locks and markers of the workers: the sweep's lock, a folder listing's lock, the sweep's
  nudges, and a listing's count of errors.

Its Lua is posterq/jobs/lua/claim.lua, give_back.lua, forgive.lua and finish.lua.
"""

import collections
import time
from dataclasses import dataclass

import redis

from posterq.config import Settings
from posterq.exceptions import PosterqError
from posterq.jobs import scripts
from posterq.jobs.fair_queue import FairQueue
from posterq.jobs.keys import FINAL_STATUSES, Keys, Lane, parse_ref
from posterq.jobs.ledger import Finished, Ledger
from posterq.jobs.records import Jobs, loaded_item
from posterq.jobs.stats import Counter, LabelledCounter

#: The error code of a poster failed for being claimed too often (poison).
REDELIVERED_TOO_OFTEN = "redelivered_too_often"
#: Seconds a job's count of listing errors is kept: far longer than its tries take.
LISTING_ERRORS_TTL = 24 * 3600


@dataclass(frozen=True)
class GiveBack:
    """What giving back a stale batch did: posters made ready, and those kept to be failed (poison).

    kept counts the refs left in the batch; exhausted holds the items of those whose jobs still
    wait for them. A batch that kept some is the sweep's to fail and finish.
    """

    ready: int
    kept: int
    exhausted: list[dict]


def redelivered_too_often(attempts: int) -> PosterqError:
    """The error a poster claimed `attempts` times without its result being written fails with."""
    return PosterqError(f"the poster was claimed {attempts} times without its result being written",
                        REDELIVERED_TOO_OFTEN)


class Claims:
    """The batch lists, claims, attempts, give-back and locks of one pool's workers."""

    def __init__(self, client: redis.Redis, settings: Settings, keys: Keys, fair_queue: FairQueue,
                 jobs: Jobs):
        self.client, self.settings, self.keys = client, settings, keys
        self.fair_queue, self.jobs = fair_queue, jobs
        self.ledger: Ledger = jobs.ledger
        self._claim = scripts.register(client, "claim.lua")
        self._give_back = scripts.register(client, "give_back.lua")
        self._forgive = scripts.register(client, "forgive.lua")
        self._finish = scripts.register(client, "finish.lua")

    @property
    def max_attempts(self) -> int:
        """Claims a poster may have: the first and max_redeliveries more."""
        return 1 + self.settings.max_redeliveries

    def claim(self, batch_id: str, size: int, max_wait: float, interactive_size: int | None = None
              ) -> tuple[list[tuple[str, int]], list[dict], bool]:
        """One delivery's claim: fill a batch to `size` refs fairly, reading their items in the same call.

        The items are those whose jobs still wait for them (not cancelled, finished or expired),
        each with its "attempts" (exhausted: more than max_attempts). A batch that has nothing is
        done at once (its posters went into another batch); one that has some but fewer than
        `size` waits up to max_wait so that small jobs arriving together share one invoke. A batch
        that takes an interactive poster stops at `interactive_size` (None: at `size`); the third
        value says it stopped there while bulk posters wait. Tokens are counted for full batches,
        so such a batch owes a token for the posters it left.
        """
        refs, items, short = self._claim_once(batch_id, size, interactive_size, first=True)
        deadline = time.monotonic() + max_wait
        while refs and len(refs) < size and not short:
            left = deadline - time.monotonic()
            if left <= 0 or not self.fair_queue.wait_for_arrivals(left):
                break
            refs, items, short = self._claim_once(batch_id, size, interactive_size, first=False)
        return refs, items, short

    def _claim_once(self, batch_id: str, size: int, interactive_size: int | None, first: bool
                    ) -> tuple[list[tuple[str, int]], list[dict], bool]:
        keys = self.keys
        held, loaded, attempts, short = self._claim(
            keys=[keys.batch(batch_id), keys.claims, keys.claimed_at, keys.attempts, keys.stats, keys.lanes,
                  keys.waiting, keys.weights, keys.queue_order, *keys.prefixes()],
            args=[scripts.args(batch_id=batch_id, size=size, interactive_size=interactive_size or size,
                               ttl=self.settings.result_ttl, first=first,
                               interactive=Lane.INTERACTIVE.value,
                               interactive_weight=self.settings.interactive_weight,
                               redeliveries_field=Counter.REDELIVERIES.value,
                               order_by_id=self.fair_queue.order_by_id, suffixes=keys.suffixes())])
        refs = [parse_ref(value) for value in held]
        return refs, _items(refs, loaded, attempts), bool(short)

    def join(self, batch_id: str, held: int, more: int) -> tuple[int, list[dict]]:
        """Top up a batch holding `held` refs by up to `more`, fairly: the refs it holds now, the items taken.

        For a batch between two of its invokes, when a one-poster call waits: the refs taken count
        an attempt each, like any claim's.
        """
        refs, items, _ = self._claim_once(batch_id, held + more, None, first=False)
        fresh = set(refs[held:])
        return len(refs), [item for item in items if (item["job_id"], item["index"]) in fresh]

    def exhausted(self, items: list[dict]) -> tuple[list[dict], list[dict]]:
        """Split claimed items into (those claimed too often, to fail; the others, to classify)."""
        over = [item for item in items if item["attempts"] > self.max_attempts]
        return over, [item for item in items if item["attempts"] <= self.max_attempts]

    def forgive(self, batch_id: str) -> None:
        """Take back a delivery's attempts, stamp its claim fresh: the database failed it, not its posters."""
        keys = self.keys
        self._forgive(keys=[keys.batch(batch_id), keys.claims, keys.attempts],
                      args=[scripts.args(batch_id=batch_id)])

    def claimed(self, batch_id: str) -> list[tuple[str, int]]:
        """The refs a batch task has claimed so far (non-empty on a redelivery)."""
        return [parse_ref(v) for v in self.client.lrange(self.keys.batch(batch_id), 0, -1)]

    def write_results(self, outcomes: list[tuple[str, int, dict, str]], model: dict,
                      claimed_at: float | None = None) -> list[Finished]:
        """Write (job id, index, result, outcome) outcomes once each; return the jobs this finished.

        Items waiting for these items' results as their twins (posterq.jobs.reuse) are written with
        them. The ledger first (one transaction: the rows and the jobs' counts), then Redis forgets the
        items and bytes and wakes the waiters of finished jobs. A delivery that dies between the
        two is delivered again: its rows are no longer pending, so it writes nothing twice, and it
        then forgets the items. `claimed_at` (epoch seconds) becomes the claimed_at of each job this
        batch starts, so a job tells how long it waited in the queue apart from how long it took.
        Raises DatabaseUnavailable (nothing written) when the database cannot be reached.
        """
        if not outcomes:
            return []
        # Items that hold the same bytes as one of these (posterq.jobs.reuse) get its result in the
        # same transaction, so that no twin is left waiting for a result that has landed.
        outcomes = outcomes + self.jobs.reuse.twins(outcomes)
        written, finished = self.ledger.write(outcomes, model, claimed_at or time.time())
        indexes: dict[str, list[int]] = {}
        for job_id, index, _, _ in outcomes:
            indexes.setdefault(job_id, []).append(index)
        # A few commands a batch, whatever its size: one per job and one per outcome kind.
        pipe = self.client.pipeline(transaction=False)
        for job_id, found in indexes.items():
            pipe.delete(*[self.keys.blob(job_id, index) for index in found])
            pipe.hdel(self.keys.items(job_id), *found)
        for outcome, count in collections.Counter(outcome for _, _, _, outcome in written).items():
            pipe.hincrby(self.keys.stats, LabelledCounter.POSTERS.field(outcome), count)
        for job in finished:
            self.jobs.finished(pipe, job.job_id, job.status)
        pipe.execute()
        return finished

    def finish(self, batch_id: str) -> None:
        """Forget a batch whose results are all written, with its posters' attempts."""
        keys = self.keys
        self._finish(keys=[keys.batch(batch_id), keys.claims, keys.attempts],
                     args=[scripts.args(batch_id=batch_id)])

    def stale(self, older_than: float) -> list[str]:
        """Task ids whose claim is older than `older_than` seconds: their task died or was lost."""
        stale = self.client.zrangebyscore(self.keys.claims, "-inf", self._now() - older_than)
        return [value.decode() for value in stale]

    def give_back(self, batch_id: str, older_than: float) -> GiveBack | None:
        """Put a stale batch's refs back at the head of their jobs' lists; None when its task lives.

        Refs already claimed max_attempts times stay in the batch, their items returned to be
        failed (GiveBack.exhausted: then fail them and finish the batch); refs of jobs that are
        gone or final are dropped.
        """
        keys = self.keys
        ready, kept, loaded = self._give_back(
            keys=[keys.claims, keys.batch(batch_id), keys.attempts, keys.lanes, keys.waiting, keys.arrivals,
                  keys.queue_order, *keys.prefixes()],
            args=[scripts.args(batch_id=batch_id, stale_after=older_than, max_attempts=self.max_attempts,
                               final_statuses=[status.value for status in FINAL_STATUSES],
                               order_by_id=self.fair_queue.order_by_id, suffixes=keys.suffixes())])
        if ready < 0:
            return None
        refs = [parse_ref(value) for value in kept]
        return GiveBack(int(ready), len(refs), _items(refs, loaded, [self.max_attempts] * len(refs)))

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

    def lock_listing(self, job_id: str, token: str, seconds: int) -> bool:
        """Take a job's folder listing for `seconds` under `token` (one listing at a time); False if taken."""
        return bool(self.client.set(self.keys.enumerating(job_id), token, nx=True, ex=seconds))

    def renew_listing(self, job_id: str, seconds: int) -> None:
        """Keep a job's listing lock for `seconds` more (after each chunk)."""
        self.client.expire(self.keys.enumerating(job_id), seconds)

    def unlock_listing(self, job_id: str, token: str) -> None:
        """Give up a job's listing lock if `token` holds it: one that lapsed may be another listing's."""
        lock = self.keys.enumerating(job_id)
        if self.client.get(lock) == token.encode():
            self.client.delete(lock)

    def listing_runs(self, job_id: str) -> bool:
        """True while some listing of the job's folder holds its lock."""
        return bool(self.client.exists(self.keys.enumerating(job_id)))

    def nudge(self, job_id: str, seconds: int) -> bool:
        """Mark that the sweep sent a job a task, for `seconds`; False when one was sent already."""
        return bool(self.client.set(self.keys.nudged(job_id), "1", nx=True, ex=seconds))

    def count_listing_error(self, job_id: str) -> int:
        """Count one more listing of a job's folder failed by an error that does not pass; return how many."""
        key = self.keys.listing_errors(job_id)
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.expire(key, LISTING_ERRORS_TTL)
        return pipe.execute()[0]


def _items(refs: list[tuple[str, int]], loaded: list, attempts: list) -> list[dict]:
    # The items of refs whose jobs still wait for them (a script's 4 values a ref), with their attempts.
    items = []
    for n, (job_id, index) in enumerate(refs):
        item = loaded_item(job_id, index, *loaded[4 * n: 4 * n + 4])
        if item is not None:
            items.append({**item, "attempts": int(attempts[n])})
    return items
