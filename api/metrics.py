"""Prometheus metrics, read from Redis at scrape time.

The counters live in Redis (written by workers and the API), not in process memory, so any
number of API processes (gunicorn) and worker hosts report one consistent set of figures.
"""

from flask import Blueprint, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from posterq.api import auth, context
from posterq.api.backpressure import redis_memory
from posterq.api.exceptions import Forbidden
from posterq.jobs.broker import Broker
from posterq.jobs.keys import Lane
from posterq.jobs.pools import held_by, is_held
from posterq.jobs.stats import BATCH_SECONDS, BATCH_SIZE, INF, JOB_SECONDS, Counter, LabelledCounter
from posterq.jobs.store import JobStore

blueprint = Blueprint("metrics", __name__)

# Each figure of the stats hash (posterq.jobs.stats) is the metric posterq_<its name>.
_LABELLED = (
    (LabelledCounter.JOBS_SUBMITTED, "Jobs submitted, by source", "source"),
    (LabelledCounter.JOBS_FINISHED, "Jobs finished, by final status", "status"),
    (LabelledCounter.POSTERS, "Posters classified, by outcome (ok or error code)", "outcome"),
)
_COUNTERS = (
    (Counter.BATCHES, "Batches run"),
    (Counter.REDELIVERIES, "Batch tasks delivered again after a worker died"),
    (Counter.SWEEP_GIVEN_BACK, "Posters of lost batches the sweep gave back"),
    (Counter.SWEEP_TOKENS, "Tokens the sweep sent for posters none claimed"),
    (Counter.REDIS_FULL, "Submissions refused because Redis had too little memory left"),
    (Counter.LISTINGS_PAUSED, "Listings of folders that paused at their key's part of the queue (or the "
                              "queue's limit), to go on as results make room"),
)
_HISTOGRAMS = (
    (BATCH_SIZE, "Posters per interpreter batch"),
    (BATCH_SECONDS, "Seconds per batch, claim to results written"),
    (JOB_SECONDS, "Seconds from submission to a job's last result"),
)


class StoreCollector:
    """A prometheus_client collector over the job store's counters."""

    def __init__(self, store: JobStore, broker: Broker, by_key: bool = False):
        # by_key: tenants are API keys (labelled by the first 12 hex digits of the key's digest),
        # not jobs, so a figure per tenant is a figure per key.
        self.store, self.broker, self.by_key = store, broker, by_key

    def collect(self):
        """Yield the metric families (called at each scrape)."""
        stats = self.store.stats.read()
        labelled = {counter: CounterMetricFamily(f"posterq_{counter.value}", doc, labels=[label])
                    for counter, doc, label in _LABELLED}
        for field, value in sorted(stats.items()):
            parsed = LabelledCounter.parse(field)
            if parsed is not None:
                counter, label = parsed
                labelled[counter].add_metric([label], value)
        yield from labelled.values()
        for counter, doc in _COUNTERS:
            yield CounterMetricFamily(f"posterq_{counter.value}", doc, value=stats.get(counter.value, 0))
        # One read of the waiting counts and one of the waiting jobs serve every queue figure.
        waiting, (ages, tenant_ages) = self.store.fair_queue.waiting(), self.store.jobs.queue_ages()
        yield GaugeMetricFamily("posterq_queue_posters", "Posters waiting for a batch",
                                value=waiting.get("total", 0))
        yield GaugeMetricFamily("posterq_queue_age_seconds",
                                "Seconds the oldest poster waiting for a batch has waited (0: none waits)",
                                value=max(ages.values(), default=0.0))
        by_lane = GaugeMetricFamily("posterq_lane_queue_posters", "Posters waiting for a batch, by lane",
                                    labels=["lane"])
        lane_ages = GaugeMetricFamily("posterq_lane_queue_age_seconds",
                                      "Seconds the oldest poster waiting in the lane has waited",
                                      labels=["lane"])
        for lane in Lane:
            by_lane.add_metric([lane.value], waiting.get(f"lane:{lane.value}", 0))
            lane_ages.add_metric([lane.value], ages.get(lane.value, 0.0))
        yield by_lane
        yield lane_ages
        if self.by_key:
            by_key = GaugeMetricFamily("posterq_key_queue_posters",
                                       "Posters waiting for a batch, by API key (its digest's first 12 "
                                       "hex digits)",
                                       labels=["key"])
            key_ages = GaugeMetricFamily("posterq_key_queue_age_seconds",
                                         "Seconds the oldest poster of an API key waiting for a batch has "
                                         "waited", labels=["key"])
            for field, count in waiting.items():
                if field.startswith("tenant:"):
                    tenant = field.removeprefix("tenant:")
                    by_key.add_metric([tenant[:12]], count)
                    key_ages.add_metric([tenant[:12]], tenant_ages.get(tenant, 0.0))
            yield by_key
            yield key_ages
        workers = self.store.stats.workers()
        # A database that is down is a figure of its own (an alert's), not a failed scrape: the
        # figures read from it are left out, and every other one is still there.
        database_up = self.store.database.ping()
        yield GaugeMetricFamily("posterq_database_up", "1 when the results database answers, else 0",
                                value=int(database_up))
        if database_up:
            yield from self._queued(held_by(workers))
        yield from self._redis_memory()
        yield GaugeMetricFamily("posterq_queue_limit_posters",
                                "Posters queued beyond which submissions are refused with 429 "
                                "(POSTERQ_MAX_QUEUED_POSTERS)", value=self.store.settings.max_queued_posters)
        yield GaugeMetricFamily("posterq_queue_tasks", "Batch tasks waiting in the Celery queue",
                                value=self.broker.queued())
        yield GaugeMetricFamily("posterq_workers", "Workers with a recent heartbeat", value=len(workers))
        by_held = GaugeMetricFamily("posterq_model_workers", "Workers with a recent heartbeat, by the model "
                                    "they hold (name@version)", labels=["model"])
        for model, count in sorted(held_by(workers).items()):
            by_held.add_metric([model], count)
        yield by_held
        for histogram, doc in _HISTOGRAMS:
            cumulative, buckets = 0.0, []
            for bound in (*histogram.buckets, INF):
                cumulative += stats.get(histogram.bucket_field(bound), 0.0)
                buckets.append((str(float(bound)) if bound != INF else INF, cumulative))
            yield HistogramMetricFamily(f"posterq_{histogram.name}", doc, buckets=buckets,
                                        sum_value=stats.get(histogram.sum_field, 0.0))

    def _queued(self, held: dict[str, int]):
        # Admission's count (posterq.jobs.admission): every poster admitted and not yet written, in
        # every pool, listed folders' included; what the limits are checked against.
        by_pool = self.store.ledger.queued_by_pool()
        yield GaugeMetricFamily("posterq_queued_posters", "Posters admitted and not yet classified, in all "
                                "pools (what POSTERQ_MAX_QUEUED_POSTERS bounds)", value=sum(by_pool.values()))
        by_model = GaugeMetricFamily("posterq_model_queued_posters",
                                     "Posters admitted and not yet classified of jobs that name a model, by "
                                     "model: they wait for a worker holding it", labels=["model"])
        unheld = GaugeMetricFamily("posterq_model_unheld_queued_posters",
                                   "Posters admitted and not yet classified of jobs that name a model no "
                                   "live worker holds, by model: they wait until one starts",
                                   labels=["model"])
        for pool, count in sorted(by_pool.items()):
            if pool:
                by_model.add_metric([pool], count)
                if not is_held(pool, held):
                    unheld.add_metric([pool], count)
        yield by_model
        yield unheld

    def _redis_memory(self):
        # The reading admission uses (posterq.jobs.memory); left out where Redis refuses INFO: an
        # unknown figure is not a zero one.
        memory = redis_memory(self.store).reading()
        if memory is not None:
            used, maxmemory = memory
            yield GaugeMetricFamily("posterq_redis_memory_used_bytes",
                                    "Bytes of memory Redis uses (used_memory)", value=used)
            yield GaugeMetricFamily("posterq_redis_memory_max_bytes", "Redis's maxmemory in bytes (0: none "
                                    "set, Redis never refuses a write for memory)", value=maxmemory)


@blueprint.get("/metrics")
def metrics():
    """Prometheus text exposition; with API keys on, for operators' keys only (it shows every key's work)."""
    if not auth.operator():
        raise Forbidden("/metrics shows every key's work: it needs one of POSTERQ_OPERATOR_KEYS",
                        "operator_only")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(context.store(), context.broker(), by_key=auth.keys_enabled()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})
