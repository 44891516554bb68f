"""Names of the job store, without a Redis client: statuses, item kinds, key names and refs.

The API's request parsing and the HTTP client read statuses from here; only the modules that
talk to Redis (records, batches, stats) import redis.
"""

from dataclasses import dataclass
from enum import Enum


class JobStatus(str, Enum):
    """Where a job stands; done/failed/cancelled are final."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # finished, but not one poster could be classified
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True once nothing more will happen to the job."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})


class ResultStatus(str, Enum):
    """Where one poster of a job stands: waiting, classified, or failed with an error code."""

    PENDING = "pending"
    OK = "ok"
    ERROR = "error"


class ItemKind(str, Enum):
    """Where a poster's bytes are: uploaded into Redis, or a file under a data root."""

    UPLOAD = "upload"
    PATH = "path"


@dataclass(frozen=True)
class Keys:
    """The one place Redis key names are built (prefix P, default "posterq").

        P:job:<id>            hash   id, status, source, total, done, failed, top_k, model, *_at
        P:job:<id>:items      hash   index -> {"name", "kind": "upload"|"path", "path"?, "error"?}
        P:job:<id>:results    hash   index -> result JSON (written once: HSETNX)
        P:job:<id>:blob:<i>   string upload bytes, TTL upload_ttl, deleted once classified
        P:job:<id>:done       list   one element once the job is final (waiters block on it)
        P:ready               list   "<id>:<index>" refs waiting for a batch
        P:batch:<task id>     list   refs one Celery task claimed (its redelivery finds the same ones)
        P:batch:<task id>:n   string deliveries of that task so far
        P:worker:<hostname>   string heartbeat JSON, TTL 3 heartbeats
        P:stats               hash   counters and histogram buckets behind /metrics
    """

    prefix: str = "posterq"

    def _name(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    def job(self, job_id: str) -> str:
        """The job's hash."""
        return self._name("job", job_id)

    def items(self, job_id: str) -> str:
        """The job's items, by index."""
        return self._name("job", job_id, "items")

    def results(self, job_id: str) -> str:
        """The job's results, by index."""
        return self._name("job", job_id, "results")

    def done(self, job_id: str) -> str:
        """Non-empty once the job is final: what a client waiting for the job blocks on."""
        return self._name("job", job_id, "done")

    def blob(self, job_id: str, index: int) -> str:
        """One uploaded poster's bytes."""
        return self._name("job", job_id, "blob", index)

    @property
    def ready(self) -> str:
        """Refs waiting to be claimed by a batch."""
        return self._name("ready")

    def batch(self, batch_id: str) -> str:
        """Refs one batch task claimed."""
        return self._name("batch", batch_id)

    def deliveries(self, batch_id: str) -> str:
        """How often one batch task has started."""
        return self._name("batch", batch_id, "n")

    def worker(self, hostname: str) -> str:
        """One worker's heartbeat."""
        return self._name("worker", hostname)

    @property
    def stats(self) -> str:
        """Counters and histograms."""
        return self._name("stats")


def ref(job_id: str, index: int) -> str:
    """The ready-list reference of one item."""
    return f"{job_id}:{index}"


def parse_ref(value: bytes | str) -> tuple[str, int]:
    """Split a ready-list reference into (job id, index)."""
    text = value.decode() if isinstance(value, bytes) else value
    job_id, _, index = text.rpartition(":")
    return job_id, int(index)
