"""Prometheus metrics, read from Redis at scrape time.

The counters live in Redis (written by workers and the API), not in process memory, so any
number of API processes (gunicorn) and worker hosts report one consistent set of figures.
"""

from flask import Blueprint, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api import context
from posterq.jobs.stats import BATCH_SECONDS_BUCKETS, BATCH_SIZE_BUCKETS, JOB_SECONDS_BUCKETS
from posterq.jobs.store import JobStore

blueprint = Blueprint("metrics", __name__)

_HISTOGRAMS = (
    ("batch_size", "posterq_batch_size", "Posters per interpreter batch", BATCH_SIZE_BUCKETS),
    ("batch_seconds", "posterq_batch_seconds", "Seconds per batch, claim to results written",
     BATCH_SECONDS_BUCKETS),
    ("job_seconds", "posterq_job_seconds", "Seconds from submission to a job's last result",
     JOB_SECONDS_BUCKETS),
)


class StoreCollector:
    """A prometheus_client collector over the job store's counters."""

    def __init__(self, store: JobStore, queue):
        self.store, self.queue = store, queue

    def collect(self):
        """Yield the metric families (called at each scrape)."""
        stats = self.store.stats.read()
        jobs = CounterMetricFamily("posterq_jobs_submitted", "Jobs submitted, by source", labels=["source"])
        finished = CounterMetricFamily("posterq_jobs_finished", "Jobs finished, by final status",
                                       labels=["status"])
        posters = CounterMetricFamily("posterq_posters", "Posters classified, by outcome (ok or error code)",
                                      labels=["outcome"])
        for name, value in sorted(stats.items()):
            kind, _, label = name.partition(":")
            family = {"jobs_submitted": jobs, "jobs_finished": finished, "posters": posters}.get(kind)
            if family is not None and label:
                family.add_metric([label], value)
        yield from (jobs, finished, posters)
        yield CounterMetricFamily("posterq_batches", "Batches run", value=stats.get("batches", 0))
        yield CounterMetricFamily("posterq_redeliveries", "Batch tasks delivered again after a worker died",
                                  value=stats.get("redeliveries", 0))
        yield CounterMetricFamily("posterq_sweep_given_back", "Posters of lost batches the sweep gave back",
                                  value=stats.get("sweep_given_back", 0))
        yield CounterMetricFamily("posterq_sweep_tokens", "Tokens the sweep sent for posters none claimed",
                                  value=stats.get("sweep_tokens", 0))
        yield GaugeMetricFamily("posterq_queue_posters", "Posters waiting for a batch",
                                value=self.store.batches.queue_depth())
        yield GaugeMetricFamily("posterq_queue_age_seconds",
                                "Seconds the oldest poster waiting for a batch has waited (0: none waits)",
                                value=self.store.jobs.queue_age())
        yield GaugeMetricFamily("posterq_queue_limit_posters",
                                "Posters waiting above which submissions are refused with 429 "
                                "(POSTERQ_MAX_QUEUED_POSTERS)", value=self.store.settings.max_queued_posters)
        yield GaugeMetricFamily("posterq_queue_tasks", "Batch tasks waiting in the Celery queue",
                                value=self.queue.depth())
        yield GaugeMetricFamily("posterq_workers", "Workers with a recent heartbeat",
                                value=len(self.store.stats.workers()))
        for field, name, doc, bounds in _HISTOGRAMS:
            cumulative, buckets = 0.0, []
            for bound in (*bounds, "+Inf"):
                cumulative += stats.get(f"{field}_bucket:{bound}", 0.0)
                buckets.append((str(float(bound)) if bound != "+Inf" else "+Inf", cumulative))
            yield HistogramMetricFamily(name, doc, buckets=buckets, sum_value=stats.get(f"{field}_sum", 0.0))


@blueprint.get("/metrics")
def metrics():
    """Prometheus text exposition."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(context.store(), context.queue()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})
