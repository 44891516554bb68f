"""JobStore: one Redis connection and the three parts of posterq's state over it."""

import redis

from posterq.config import Settings
from posterq.jobs.batches import Batches
from posterq.jobs.jobs import Jobs
from posterq.jobs.schedule import Schedule
from posterq.jobs.schema import Keys
from posterq.jobs.stats import Stats

#: Seconds a Redis call may go unanswered before it fails.
SOCKET_TIMEOUT = 10.0


class JobStore:
    """`jobs` (records and results), `batches` (the worker side) and `stats` over one client."""

    def __init__(self, client: redis.Redis, settings: Settings):
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.schedule = Schedule(client, settings, self.keys)
        self.jobs = Jobs(client, settings, self.keys, self.schedule)
        self.batches = Batches(client, settings, self.keys, self.schedule)
        self.stats = Stats(client, settings, self.keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> "JobStore":
        """Connect to settings.redis_url."""
        # A Redis that stops answering fails a request after SOCKET_TIMEOUT instead of hanging it;
        # blocking waits stay under it (Jobs.wait).
        client = redis.Redis.from_url(settings.redis_url, health_check_interval=30,
                                      socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT)
        return cls(client, settings)

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False
