"""JobStore: one Redis connection and the three parts of posterq's state over it."""

import redis

from posterq.config import Settings
from posterq.jobs.batches import Batches
from posterq.jobs.records import Jobs
from posterq.jobs.schema import Keys
from posterq.jobs.stats import Stats


class JobStore:
    """`jobs` (records and results), `batches` (the worker side) and `stats` over one client."""

    def __init__(self, client: redis.Redis, settings: Settings):
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.jobs = Jobs(client, settings, self.keys)
        self.batches = Batches(client, settings, self.keys)
        self.stats = Stats(client, settings, self.keys)

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
