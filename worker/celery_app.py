"""The Celery app and its configuration: `celery -A worker.celery_app worker` or `posterq worker`."""

import logging

from celery import Celery, signals

from posterq.config import Settings
from worker import runtime

log = logging.getLogger(__name__)


def celery_config(settings: Settings) -> dict:
    """Celery settings for posterq: late acks, no hoarding, redelivery after the visibility timeout."""
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # Above the longest batch: a batch still running when this passes is handed to another
            # worker too (harmless, results are written once, but wasted work).
            "visibility_timeout": settings.visibility_timeout,
            # Sweep for a dead worker's unacknowledged batches every restore_interval seconds.
            "unacked_restore_interval": settings.restore_interval,
            "unacked_restore_throttle": 1,
        },
        # A batch is acknowledged after it ran, and given back if its process died meanwhile.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One reserved batch per process: a slow worker does not sit on batches others could run.
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.queue,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Results live in the job store, not in a Celery result backend.
        "task_ignore_result": True,
        "worker_send_task_events": False,
        "include": ["worker.tasks"],
    }


def create_celery(settings: Settings | None = None) -> Celery:
    """A Celery app configured from settings (the environment by default)."""
    settings = settings or Settings.from_env()
    app = Celery("posterq", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


@signals.worker_init.connect
def _remember_processes(sender=None, **_):
    # Before the fork: children size their interpreter threads from the pool size.
    runtime.set_processes(getattr(sender, "concurrency", 0) or 0)


@signals.worker_ready.connect
def _start_heartbeat(sender=None, **_):
    hostname = sender.hostname
    processes = getattr(getattr(sender, "controller", None), "concurrency", 0) or 0
    app.posterq_heartbeat = runtime.Heartbeat(hostname, processes)
    app.posterq_heartbeat.start()
    log.info("worker %s ready (%d processes)", hostname, processes)


@signals.worker_shutdown.connect
def _stop_heartbeat(**_):
    heartbeat = getattr(app, "posterq_heartbeat", None)
    if heartbeat is not None:
        heartbeat.stop()


# Celery's command line looks for a module-level app; creating it connects to nothing.
app = create_celery()
