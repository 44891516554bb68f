"""Worker heartbeats, counters and histograms: the figures behind /readyz and /metrics.

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

    def count(self, counter: Counter, amount: int = 1) -> None:
        """Add to a counter."""
        self.client.hincrby(self.keys.stats, counter.value, amount)

    def read(self) -> dict[str, float]:
        """Every counter and histogram field, as numbers."""
        return {k.decode(): float(v) for k, v in self.client.hgetall(self.keys.stats).items()}
