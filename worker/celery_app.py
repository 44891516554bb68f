"""The Celery app and its configuration: `celery -A worker.celery_app worker` or `posterq worker`."""

import logging

from celery import Celery, signals

from posterq.config import Settings
from posterq.jobs.broker import Broker, celery_config
from worker import runtime
from worker.sweep import Sweeper

log = logging.getLogger(__name__)


def create_celery(settings: Settings | None = None) -> Celery:
    """A Celery app configured from settings (the environment by default)."""
    settings = settings or Settings.from_env()
    app = Celery("posterq", set_as_current=False)
    app.conf.update(celery_config(settings), include=["worker.tasks"])
    return app


@signals.worker_init.connect
def _remember_processes(sender=None, **_):
    # Before the fork: children size their interpreter threads from the pool size.
    runtime.set_processes(getattr(sender, "concurrency", 0) or 0)


@signals.worker_ready.connect
def _start_heartbeat(sender=None, **_):
    hostname = sender.hostname
    processes = getattr(getattr(sender, "controller", None), "concurrency", 0) or 0
    # The main process's one store, shared by both threads (see runtime.store).
    store = runtime.store()
    store.migrate()
    app.posterq_heartbeat = runtime.Heartbeat(store, hostname, processes)
    app.posterq_heartbeat.start()
    # The sweep's tokens go out as the API sends a new job's, through this app.
    app.posterq_sweeper = Sweeper(store, Broker(app, store.settings))
    app.posterq_sweeper.start()
    log.info("worker %s ready (%d processes)", hostname, processes)


@signals.worker_shutdown.connect
def _stop_heartbeat(**_):
    for name in ("posterq_sweeper", "posterq_heartbeat"):
        thread = getattr(app, name, None)
        if thread is not None:
            thread.stop()


# Celery's command line looks for a module-level app; creating it connects to nothing.
app = create_celery()
