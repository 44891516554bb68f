"""JobStore: one Redis connection and one database, and the parts of posterq's state over them."""

import logging

import redis

from posterq.config import Settings
from posterq.exceptions import DatabaseUnavailable
from posterq.jobs.claims import Claims
from posterq.jobs.database import Database
from posterq.jobs.fair_queue import FairQueue
from posterq.jobs.keys import Keys
from posterq.jobs.ledger import Ledger
from posterq.jobs.pools import DEFAULT_POOL, pool_settings
from posterq.jobs.records import Jobs
from posterq.jobs.stats import Stats
from posterq.jobs.window import Window

log = logging.getLogger(__name__)

#: Seconds a Redis call may go unanswered before it fails.
SOCKET_TIMEOUT = 10.0


class JobStore:
    """`jobs`, `fair_queue`, `claims` (what the workers hold), `window` and `stats`, of one pool.

    A store made from settings is the default pool's; for_pool() gives the store of a model's pool
    (posterq.jobs.pools), over the same Redis client and database.
    """

    def __init__(self, client: redis.Redis, settings: Settings, database: Database | None = None,
                 pool: str = DEFAULT_POOL, root: "JobStore | None" = None):
        self.client = client
        self.settings = settings
        self.pool = pool
        self._root = root or self
        self._pools: dict[str, JobStore] = {pool: self} if root is None else {}
        self.keys = Keys(settings.key_prefix)
        self.database = database or Database.shared(settings.database_url)
        self.ledger = Ledger(self.database, (root or self).settings.key_prefix)
        self.fair_queue = FairQueue(client, settings, self.keys)
        self.jobs = Jobs(client, settings, self.keys, self.fair_queue, self.ledger, pool,
                         lambda other: self.for_pool(other).jobs)
        self.claims = Claims(client, settings, self.keys, self.fair_queue, self.jobs)
        self.window = Window(client, settings, self.keys, self.fair_queue, self.ledger)
        self.stats = Stats(client, settings, self.keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> "JobStore":
        """Connect to settings.redis_url."""
        # A Redis that stops answering fails a request after SOCKET_TIMEOUT instead of hanging it;
        # blocking waits stay under it (Jobs.wait).
        client = redis.Redis.from_url(settings.redis_url, health_check_interval=30,
                                      socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT)
        return cls(client, settings)

    def for_pool(self, pool: str) -> "JobStore":
        """The store of a model's pool (its own key prefix and queue), made once per pool."""
        root = self._root
        if pool not in root._pools:
            root._pools[pool] = JobStore(self.client, pool_settings(root.settings, pool), self.database,
                                         pool, root)
        return root._pools[pool]

    def forget_pool(self) -> bool:
        """Delete a model pool's bookkeeping keys once it has no job left that is not final; True if it did.

        So that a model named once leaves nothing behind in Redis: its jobs' hashes and done lists
        expire on their own, and its empty lists and sets are gone already. The broker's queue of
        the pool goes too (Broker.forget_queue, called beside this).
        """
        if self.pool == DEFAULT_POOL or self.ledger.pool_busy(self.pool):
            return False
        self.client.delete(*self.keys.pool_bookkeeping())
        log.info("model pool %s: its last job has ended; its keys are removed", self.pool)
        return True

    def migrate(self) -> bool:
        """Bring the database's schema up to date (each process does at start); False when it is down.

        A database that is down at start is not fatal: requests answer 503 and batches wait until
        it answers, and the next start (or the sweep) migrates it.
        """
        try:
            self.database.migrate()
            return True
        except DatabaseUnavailable as exc:
            log.error("%s: the schema is brought up to date once it answers", exc.message)
            return False

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False
