"""Names of the job store, without a Redis client: statuses, item kinds, key names and refs.

The API's request parsing and the HTTP client read statuses from here without importing redis;
only the modules that talk to Redis do.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

#: A job id's shape: uuid4().hex. An id from a request is checked against it before it becomes
#: part of a key name, so that "<id>:items" or "<id>:blob:0" cannot name another key.
_JOB_ID = re.compile(r"[0-9a-f]{32}")


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


class OutputStatus(str, Enum):
    """Where a job's output file stands (posterq.worker.outputs): pending until written or failed for good."""

    PENDING = "pending"
    WRITTEN = "written"
    FAILED = "failed"


class ItemKind(str, Enum):
    """Where a poster's bytes are: uploaded into Redis, or a file under a data root."""

    UPLOAD = "upload"
    PATH = "path"


class Lane(str, Enum):
    """Which queue a poster waits in: one-poster calls are claimed ahead of bulk work, within a share."""

    INTERACTIVE = "interactive"
    BULK = "bulk"


class _Key:
    """A key of a fixed name under the prefix, read as a property: Keys.lanes -> "P:lanes"."""

    def __init__(self, *parts: str):
        self.parts = parts

    def __get__(self, keys: "Keys | None", owner: type) -> "str | _Key":
        return self if keys is None else keys._name(*self.parts)


class _JobKey:
    """A key of one job, read as a method: Keys.items(job_id) -> "P:job:<id>:items"."""

    def __init__(self, suffix: str = ""):
        self.suffix = (suffix,) if suffix else ()

    def __get__(self, keys: "Keys | None", owner: type) -> "Callable[[str], str] | _JobKey":
        if keys is None:
            return self
        return lambda job_id: keys._name("job", job_id, *self.suffix)


@dataclass(frozen=True)
class Keys:
    """The one place Redis key names are built (prefix P, default "posterq").

        P:job:<id>            hash   what workers need of a job in flight: id, status, source,
                                     top_k, lane, tenant, created_at, fed, key_limit? (the last index
                                     made ready); counts and results are the database's (ledger)
        P:job:<id>:items      hash   index -> {"name", "kind": "upload"|"path", "path"?, "error"?},
                                     for the items made ready and not yet written
        P:job:<id>:blob:<i>   string upload bytes, TTL upload_ttl, deleted once classified
        P:job:<id>:done       list   one element once the job is final (waiters block on it)
        P:job:<id>:enumerating string lock: the one task listing the job's folder (TTL, renewed)
        P:job:<id>:listing_errors string listing tries that failed with an error that does not pass
        P:job:<id>:nudged     string set when the sweep sent a new listing task (one per lock TTL)
        P:job:<id>:submitting string lease of the request submitting the job (TTL), until it is complete
        P:job:<id>:discarded  string set when a failed submission removed the job (aborts its write)
        P:ready:<id>          list   the job's "<id>:<index>" refs waiting for a batch
        P:lanes               zset   lanes with waiting posters, by posters served / lane weight
        P:lane:<lane>         zset   tenants (API key digests, or job ids without keys) with
                                     waiting posters in the lane, by posters served / weight
        P:lane:<lane>:<t>     zset   tenant t's jobs with waiting posters, by posters served
                                     (members of both: "<arrival>:<name>", so equals go by arrival)
        P:order               hash   "<level key>|<name>" -> its member in that level, and
                                     "#arrivals", the counter; gone once nothing waits
        P:waiting             hash   posters waiting: "total", "lane:<lane>", "tenant:<t>"
        P:weights             hash   tenant -> its weight, where it is not 1
        P:arrivals            list   a short list pushed when posters become ready (claims wait on it)
        P:batch:<task id>     list   refs one Celery task claimed (its redelivery finds the same ones)
        P:claims              zset   task ids holding claimed refs, by when they last claimed (0: the
                                     sweep gave the rest back and fails what is left)
        P:claimed_at          string when any batch last claimed a ref (the sweep's sign of life)
        P:attempts            hash   "<id>:<index>" -> deliveries that claimed the item (until written)
        P:sweep               string lock: the one worker sweeping now (TTL one sweep interval)
        P:worker:<hostname>   string heartbeat JSON, TTL 3 heartbeats
        P:announced           zset   models ("name@version") workers announced, by when last
        P:stats               hash   counters and histogram buckets behind /metrics
        P:throughput:<minute> hash   posters classified in that minute (epoch seconds // 60):
                                     "total" and "worker:<hostname>"; TTL just over an hour

    A job that names a model lives in that model's pool (posterq.jobs.pools), whose keys are all
    of the above under the prefix "P:model:<pool>" (pool_prefix).
    """

    prefix: str = "posterq"

    # Keys of a fixed name: the attribute's docstring says what each holds.
    lanes = _Key("lanes")
    """Lanes with waiting posters, scored by the posters each was served over its weight."""
    queue_order = _Key("order")
    """The fair queue's arrival numbers: each waiting tenant's and job's member in its level."""
    waiting = _Key("waiting")
    """Posters waiting for a batch: in total, by lane and by tenant."""
    weights = _Key("weights")
    """Tenants' weights, where they are not 1."""
    arrivals = _Key("arrivals")
    """Pushed when posters become ready: what a claim waiting for stragglers blocks on."""
    claims = _Key("claims")
    """Task ids holding claimed refs, scored by when they last claimed."""
    claimed_at = _Key("claimed_at")
    """When any batch last claimed a ref."""
    attempts = _Key("attempts")
    """How many deliveries claimed each item, until its batch is finished."""
    sweep = _Key("sweep")
    """The sweep's lock."""
    announced = _Key("announced")
    """Models workers have announced, scored by when one last did."""
    stats = _Key("stats")
    """Counters and histograms."""

    # Keys of one job, called with its id.
    job = _JobKey()
    """The job's hash (its fields: job_hash)."""
    items = _JobKey(suffix="items")
    """The job's items, by index."""
    enumerating = _JobKey(suffix="enumerating")
    """Held by the one task listing a directory job's folder."""
    listing_errors = _JobKey(suffix="listing_errors")
    """How many listings of a directory job's folder failed with an error that does not pass."""
    done = _JobKey(suffix="done")
    """Non-empty once the job is final: what a client waiting for the job blocks on."""
    discarded = _JobKey(suffix="discarded")
    """Marks a job whose submission failed and was removed, so that a late write of it is aborted."""
    submitting = _JobKey(suffix="submitting")
    """Held while a request writes the job; a job not submitted without it was cut off."""
    nudged = _JobKey(suffix="nudged")
    """Set while a listing task the sweep sent for the job may still be on its way."""

    def _name(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    def pool_prefix(self, pool: str) -> str:
        """The key prefix of a model's pool ("name@version" or "name"): every key of its jobs is under it."""
        return self._name("model", pool)

    def blob(self, job_id: str, index: int) -> str:
        """One uploaded poster's bytes."""
        return self._name("job", job_id, "blob", index)

    def ready(self, job_id: str) -> str:
        """A job's refs waiting to be claimed by a batch."""
        return self._name("ready", job_id)

    def lane(self, lane: str) -> str:
        """Tenants with waiting posters in a lane, scored by posters served over their weight."""
        return self._name("lane", lane)

    def lane_jobs(self, lane: str, tenant: str) -> str:
        """One tenant's jobs with waiting posters in a lane, scored by posters served."""
        return self._name("lane", lane, tenant)

    def batch(self, batch_id: str) -> str:
        """Refs one batch task claimed."""
        return self._name("batch", batch_id)

    def prefixes(self) -> list[str]:
        """The prefixes of the keys a Lua script picks at run time: a job's ready list, a lane's, a job's.

        Passed in KEYS (posterq/jobs/lua/fair_queue.lua builds the names from them).
        """
        return [self.ready(""), self.lane(""), self.job("")]

    def suffixes(self) -> dict[str, str]:
        """What follows those prefixes in the names built at run time, cut from this class's own names."""
        job, lane = self.job("\0"), self.lane("\0")
        return {"items": self.items("\0")[len(job):], "blob": self.blob("\0", 0)[len(job):-1],
                "lane_tenant": self.lane_jobs("\0", "\1")[len(lane):-1]}

    def worker(self, hostname: str) -> str:
        """One worker's heartbeat."""
        return self._name("worker", hostname)

    def throughput(self, minute: int) -> str:
        """Posters classified in one minute (epoch seconds // 60), in total and by worker."""
        return self._name("throughput", minute)

    def pool_bookkeeping(self) -> list[str]:
        """A pool's keys that outlive its jobs: what goes when its last job has ended (JobStore.forget_pool).

        Its jobs' own keys expire or empty (Redis deletes an empty list, hash or zset).
        """
        return [self.arrivals, self.stats, self.weights, self.claimed_at, self.attempts, self.claims]


def job_hash(record: dict, fed: int) -> dict[str, object]:
    """The fields of a job's Redis hash, from its record or ledger row; fed: the last index made ready."""
    fields: dict[str, object] = {
        "id": record["id"], "status": record["status"], "source": record["source"],
        "top_k": record.get("top_k") or 0, "created_at": f"{record['created_at']:.6f}",
        "lane": record["lane"], "tenant": record["tenant"], "fed": fed}
    # Only a keyed submission has a key limit (posterq.jobs.admission); a ledger row never does.
    if record.get("key_limit") is not None:
        fields["key_limit"] = record["key_limit"]
    return fields


def new_job_id() -> str:
    """A fresh job id (32 lowercase hex digits)."""
    return uuid.uuid4().hex


def is_job_id(value: object) -> bool:
    """True when value has the shape of a job id; anything else names no job."""
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


def ref(job_id: str, index: int) -> str:
    """The ready-list reference of one item."""
    return f"{job_id}:{index}"


def parse_ref(value: bytes | str) -> tuple[str, int]:
    """Split a ready-list reference into (job id, index)."""
    text = value.decode() if isinstance(value, bytes) else value
    job_id, _, index = text.rpartition(":")
    return job_id, int(index)
