"""How full Redis is: its used memory against its maxmemory, as one process reads them from INFO."""

import logging
import math
import threading
import time
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from posterq.jobs.store import JobStore

log = logging.getLogger(__name__)


class RedisMemory:
    """Redis's used memory and maxmemory as one process sees them, reading INFO at most once an interval.

    The API admits new work under the reading (admit, done), the worker's consumer waits while
    Redis is over its maxmemory (over). The bodies of the requests this process admitted count on
    top of the reading, which may not show them yet: a burst of uploads within one interval
    cannot overshoot.
    """

    def __init__(self, client: redis.Redis, interval: float):
        self.client, self.interval = client, interval
        self._lock = threading.Lock()
        self._read_at = -math.inf
        self._used = self._maxmemory = 0
        # Bodies of admitted requests still running, and of those that ended since the last reading
        # (their bytes may have reached Redis after it): both count on top of the reading.
        self._in_flight = self._ended = 0
        self._refused = False

    @classmethod
    def of(cls, store: "JobStore") -> "RedisMemory":
        """The memory of a JobStore's Redis, read at most once POSTERQ_REDIS_MEMORY_INTERVAL."""
        return cls(store.client, store.settings.redis_memory_interval)

    def admit(self, body: int, headroom: float) -> tuple[bool, int, int]:
        """Count a body if it fits under maxmemory less headroom: (admitted, used, limit).

        An admitted request calls done(body) when it ends. limit is 0 where Redis has no maxmemory:
        Redis then never refuses a write for memory, and everything is admitted. A Redis that
        cannot be reached raises redis.RedisError.
        """
        with self._lock:
            if time.monotonic() - self._read_at >= self.interval:
                self._read()
            used = self._used + self._in_flight + self._ended
            limit = int(self._maxmemory * (1 - headroom))
            if self._maxmemory and used + body > limit:
                return False, used, limit
            self._in_flight += body
            return True, used, limit

    def reading(self) -> tuple[int, int] | None:
        """(used, maxmemory) as last read (at most an interval ago); None where Redis refuses INFO.

        maxmemory is 0 where none is set. A Redis that cannot be reached raises redis.RedisError.
        """
        with self._lock:
            if time.monotonic() - self._read_at >= self.interval:
                self._read()
            return None if self._refused else (self._used, self._maxmemory)

    def done(self, body: int) -> None:
        """An admitted request of `body` bytes ended: its bytes are in Redis now, or never will be."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - body)
            self._ended += body

    def over(self) -> tuple[int, int] | None:
        """(used, maxmemory) from a fresh reading while Redis is over its maxmemory, else None.

        A Redis that cannot be reached is not over it: whoever waits on this has its own way of
        dealing with a lost Redis.
        """
        with self._lock:
            try:
                self._read()
            except redis.RedisError:
                return None
            if self._maxmemory and self._used > self._maxmemory:
                return self._used, self._maxmemory
            return None

    def _read(self) -> None:
        # A Redis that will not tell (INFO refused by an ACL) counts as one without maxmemory, said
        # once in the log; a Redis that cannot be reached raises. Called with the lock held.
        try:
            info = self.client.info("memory")
        except redis.ResponseError as exc:
            if not self._refused:
                log.warning("Redis refused INFO memory (%s): its maxmemory is not watched", exc)
            self._refused, info = True, {}
        self._used, self._maxmemory = int(info.get("used_memory") or 0), int(info.get("maxmemory") or 0)
        self._read_at, self._ended = time.monotonic(), 0
