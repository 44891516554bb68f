"""Worker heartbeats, counters and histograms: the figures behind /readyz and /metrics."""

import json
import time

import redis

from posterq.config import Settings
from posterq.jobs.schema import Keys

# Histogram bucket bounds (upper, inclusive) of the figures /metrics reports.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
BATCH_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
JOB_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Stats:
    """Live workers and the counters kept in one Redis hash, shared by every process."""

    def __init__(self, client: redis.Redis, settings: Settings, keys: Keys):
        self.client, self.settings, self.keys = client, settings, keys

    def heartbeat(self, hostname: str, info: dict) -> None:
        """Say that a worker is alive, for a few heartbeat intervals."""
        ttl = max(1, int(3 * self.settings.heartbeat_interval + 0.999))
        self.client.set(self.keys.worker(hostname), json.dumps({**info, "seen_at": time.time()}), ex=ttl)

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

    def read(self) -> dict[str, float]:
        """Every counter and histogram field, as numbers."""
        return {k.decode(): float(v) for k, v in self.client.hgetall(self.keys.stats).items()}
