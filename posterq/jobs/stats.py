"""Worker heartbeats, counters, histograms, throughput: the figures of /readyz, /metrics, /dashboard.

The stats hash's vocabulary is named here and nowhere else: its writers (the job and batch
scripts, the workers, the sweep) and its readers (/metrics, backpressure) use these names.
"""

import json
import time
from dataclasses import dataclass
from enum import Enum

import redis

from posterq.config import Settings
from posterq.jobs.keys import Keys


class Counter(str, Enum):
    """A counter kept in one field of the stats hash."""

    BATCHES = "batches"  # batches run
    REDELIVERIES = "redeliveries"  # deliveries of a batch task that found posters an earlier one held
    SWEEP_GIVEN_BACK = "sweep_given_back"  # posters of lost batches the sweep gave back
    SWEEP_TOKENS = "sweep_tokens"  # tokens the sweep sent for posters none claimed
    REDIS_FULL = "redis_full"  # submissions refused because Redis had too little memory left
    LISTINGS_PAUSED = "listings_paused"  # listing runs that stopped at their key's part of the queue


class LabelledCounter(str, Enum):
    """A counter kept per label, in one field "<name>:<label>" of the stats hash for each label."""

    JOBS_SUBMITTED = "jobs_submitted"  # by source
    JOBS_FINISHED = "jobs_finished"  # by final status
    POSTERS = "posters"  # by outcome: ok or an error code

    @property
    def prefix(self) -> str:
        """What every field of this counter starts with; the label follows (the Lua scripts append it)."""
        return f"{self.value}:"

    def field(self, label: str) -> str:
        """The field that counts one label."""
        return self.prefix + label

    @classmethod
    def parse(cls, field: str) -> "tuple[LabelledCounter, str] | None":
        """(counter, label) of a labelled field; None for any other field of the hash."""
        name, _, label = field.partition(":")
        try:
            return (cls(name), label) if label else None
        except ValueError:  # a plain counter or a histogram's field
            return None


#: The bucket above every bound.
INF = "+Inf"


@dataclass(frozen=True)
class Histogram:
    """A histogram kept in the stats hash: a count per bucket, a sum and a count of observations."""

    name: str
    buckets: tuple[float, ...]  # upper bounds, inclusive

    def bound(self, value: float) -> float | str:
        """The upper bound of the bucket that value falls in (INF above the last)."""
        return next((bound for bound in self.buckets if value <= bound), INF)

    def bucket_field(self, bound: float | str) -> str:
        """The field that counts the observations of one bucket (not cumulative)."""
        return f"{self.name}_bucket:{bound}"

    @property
    def sum_field(self) -> str:
        """The field that sums the observations."""
        return f"{self.name}_sum"

    @property
    def count_field(self) -> str:
        """The field that counts the observations."""
        return f"{self.name}_count"


BATCH_SIZE = Histogram("batch_size", (1, 2, 4, 8, 16, 32, 64, 128))
BATCH_SECONDS = Histogram("batch_seconds", (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
JOB_SECONDS = Histogram("job_seconds", (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))

MINUTE = 60
#: The whole minutes of throughput the dashboard plots (an hour), before the minute under way.
THROUGHPUT_MINUTES = 60
#: Seconds a minute's throughput hash outlives its minute: the hour read, plus a margin.
THROUGHPUT_TTL = (THROUGHPUT_MINUTES + 2) * MINUTE
#: The field of a throughput hash that counts every worker's posters; "worker:<hostname>" counts one's.
THROUGHPUT_TOTAL = "total"


def throughput_field(hostname: str) -> str:
    """The field of a throughput hash that counts one worker's posters."""
    return f"worker:{hostname}"


@dataclass(frozen=True)
class Throughput:
    """Posters classified per minute, oldest first, the last entry the minute under way at `now`."""

    now: float
    starts: list[int]  # each minute's first second (epoch)
    counts: list[dict[str, int]]  # each minute's fields: THROUGHPUT_TOTAL and throughput_field(host)

    def series(self) -> list[tuple[int, float]]:
        """(minute's start, posters/s) per minute; the minute under way over the seconds it has run."""
        last = len(self.starts) - 1
        return [(start, round(count.get(THROUGHPUT_TOTAL, 0) / self._seconds(start, n == last), 3))
                for n, (start, count) in enumerate(zip(self.starts, self.counts, strict=True))]

    def rate(self, field: str = THROUGHPUT_TOTAL) -> float:
        """Posters/s over the last 60 s: the minute under way, and the part of the one before in them."""
        # The minute before counts as if its posters were spread evenly over it.
        if len(self.counts) < 2:
            return 0.0
        under_way = self._seconds(self.starts[-1], True) / MINUTE
        earlier = self.counts[-2].get(field, 0) * max(0.0, 1 - under_way)
        return round((earlier + self.counts[-1].get(field, 0)) / MINUTE, 3)

    def _seconds(self, start: int, under_way: bool) -> float:
        # A minute under way has run only this long; at least a second, so a rate is never 1/0.
        return max(1.0, min(MINUTE, self.now - start)) if under_way else MINUTE


class Stats:
    """Live workers and the counters kept in one Redis hash, shared by every process."""

    def __init__(self, client: redis.Redis, settings: Settings, keys: Keys):
        self.client, self.settings, self.keys = client, settings, keys

    def heartbeat(self, hostname: str, info: dict) -> None:
        """Say that a worker is alive, for a few heartbeat intervals."""
        ttl = max(1, int(3 * self.settings.heartbeat_interval + 0.999))
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.keys.worker(hostname), json.dumps({**info, "seen_at": now}), ex=ttl)
        if info.get("model"):
            # The model is one jobs may name for a while after this worker is gone (announced()).
            pipe.zadd(self.keys.announced, {info["model"]: now})
            pipe.zremrangebyscore(self.keys.announced, "-inf", now - self.settings.model_announcement_ttl)
        pipe.execute()

    def announced(self) -> list[str]:
        """Models workers announced within model_announcement_ttl ("name@version")."""
        since = time.time() - self.settings.model_announcement_ttl
        return [model.decode() for model in self.client.zrangebyscore(self.keys.announced, since, "+inf")]

    def forget_worker(self, hostname: str) -> None:
        """Remove a worker's heartbeat when it shuts down cleanly."""
        self.client.delete(self.keys.worker(hostname))

    def workers(self) -> dict[str, dict]:
        """Live workers by hostname, from their heartbeats."""
        names = list(self.client.scan_iter(match=self.keys.worker("*"), count=100))
        values = self.client.mget(names) if names else []
        skip = len(self.keys.worker(""))
        return {name.decode()[skip:]: json.loads(value)
                for name, value in zip(names, values, strict=True) if value}

    def observe_many(self, observations, counters=()) -> None:
        """Add (histogram, value) observations and (counter, amount) counts in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for histogram, value in observations:
            pipe.hincrby(self.keys.stats, histogram.bucket_field(histogram.bound(value)), 1)
            pipe.hincrbyfloat(self.keys.stats, histogram.sum_field, value)
            pipe.hincrby(self.keys.stats, histogram.count_field, 1)
        for counter, amount in counters:
            pipe.hincrby(self.keys.stats, counter.value, amount)
        pipe.execute()

    def count_posters(self, hostname: str, posters: int) -> None:
        """Add a batch's posters to this minute's throughput, in total and for the worker that ran it."""
        key = self.keys.throughput(int(time.time() // MINUTE))
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(key, THROUGHPUT_TOTAL, posters)
        pipe.hincrby(key, throughput_field(hostname), posters)
        pipe.expire(key, THROUGHPUT_TTL)
        pipe.execute()

    def throughput(self, minutes: int = THROUGHPUT_MINUTES) -> Throughput:
        """Posters classified in each of the last `minutes` whole minutes and in the one under way."""
        now = time.time()
        current = int(now // MINUTE)
        starts = [minute * MINUTE for minute in range(current - minutes, current + 1)]
        pipe = self.client.pipeline(transaction=False)
        for start in starts:
            pipe.hgetall(self.keys.throughput(start // MINUTE))
        counts = [{name.decode(): int(value) for name, value in fields.items()} for fields in pipe.execute()]
        return Throughput(now, starts, counts)

    def count(self, counter: Counter, amount: int = 1) -> None:
        """Add to a counter."""
        self.client.hincrby(self.keys.stats, counter.value, amount)

    def read(self) -> dict[str, float]:
        """Every counter and histogram field, as numbers."""
        return {k.decode(): float(v) for k, v in self.client.hgetall(self.keys.stats).items()}
