"""The Celery app and its configuration: `celery -A posterq.worker.celery_app worker` or `posterq worker`."""

import logging
import time

from celery import Celery, signals
from celery.worker import consumer, state
from kombu.common import ignore_errors

from posterq.config import Settings
from posterq.cpu import cpu_facts, describe
from posterq.jobs.broker import Broker, celery_config, listing_queue
from posterq.jobs.memory import RedisMemory
from posterq.worker import runtime
from posterq.worker.sweep import Sweeper

log = logging.getLogger(__name__)

#: The longest wait between two looks at a Redis over its maxmemory: a worker goes back to work
#: within this many seconds of memory being freed, at the cost of one INFO per wait.
FULL_REDIS_WAIT_MAX = 8.0


def create_celery(settings: Settings | None = None) -> Celery:
    """A Celery app configured from settings (the environment by default)."""
    settings = settings or Settings.from_env()
    app = Celery("posterq", set_as_current=False)
    app.conf.update(
        celery_config(settings), include=["posterq.worker.tasks"],
        # A command Redis refuses (a full Redis answers OOM to the unacked bookkeeping of every
        # message received) is a channel error: by default it ends the worker ("Unrecoverable
        # error"); retried, it restarts the consumer, which waits in connect() below.
        broker_channel_error_retry=True,
        worker_consumer=f"{__name__}:Consumer")
    return app


class Consumer(consumer.Consumer):
    """Celery's consumer, that waits with backoff while Redis is over its maxmemory before connecting.

    Connecting to a full Redis fails (kombu takes a lock with SET at once) and Celery would try
    again several times a second, leaking the connection each time; consuming from it fails at the
    first message received. Waiting costs nothing meanwhile: this worker could not run a batch.
    """

    def connect(self):
        """Wait until Redis has room, then connect; a connection whose set-up Redis refused is closed."""
        wait_for_room(RedisMemory.of(runtime.store()))
        connection = self.connection_for_read(heartbeat=self.amqheartbeat)
        if self.hub:
            try:
                connection.transport.register_with_event_loop(connection.connection, self.hub)
            except Exception:
                # Celery's own connect() drops it open: one Redis connection lost per try.
                ignore_errors(connection, connection.close)
                raise
        return connection


    def on_connection_error_after_connected(self, exc):
        """Celery's recovery from a lost broker, where closing the dead connection must not end the worker."""
        connection = self.connection
        if connection is not None:
            # Celery closes the lost connection after collect() has dropped its client; kombu's
            # Redis channel then restores its unacked messages through a connection with no
            # address and raises AttributeError, which ignore_errors() lets through, and the worker
            # exits ("Unrecoverable error") mid-restart of Redis. Those messages stay in kombu's
            # unacked hash, restored later (visibility timeout), and the sweep gives back their
            # posters anyway: nothing is lost by going on.
            close = connection.close

            def close_what_is_left():
                try:
                    close()
                except AttributeError:
                    log.warning("the lost broker connection could not be closed cleanly; reconnecting",
                                exc_info=True)

            connection.close = close_what_is_left
        super().on_connection_error_after_connected(exc)


def wait_for_room(memory: RedisMemory) -> None:
    """Return once Redis is within its maxmemory (or has none), looking again later and later."""
    wait = 0.5
    # A Redis that does not answer is not waited for: Celery's own reconnecting deals with it.
    while (over := memory.over()) is not None:
        used, maxmemory = over
        log.warning("Redis is full (%d bytes used, maxmemory %d): consuming again once memory is freed; "
                    "next look in %g s", used, maxmemory, wait)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            state.maybe_shutdown()  # a warm or cold shutdown asked meanwhile ends the wait
            time.sleep(0.2)
        wait = min(FULL_REDIS_WAIT_MAX, wait * 2)


@signals.worker_init.connect
def _remember_processes(sender=None, **_):
    # Before the fork: children size their interpreter threads from the pool size.
    runtime.set_processes(getattr(sender, "concurrency", 0) or 0)


@signals.celeryd_after_setup.connect
def _consume_model_queues(sender=None, instance=None, **_):
    # Besides the default queue, the queues of the model this worker holds (by version and by
    # name): Celery's own routing sends a job that names a model only to workers that hold it.
    # Each pool's listing queue too, which kombu reads before the batch queues (ListingFirstCycle).
    for pool in runtime.pools():
        queue = runtime.store(pool).settings.queue
        for name in ([queue] if pool else []) + [listing_queue(queue)]:
            instance.app.amqp.queues.select_add(name)
            log.info("worker %s consumes %s as well", sender, name)


@signals.worker_ready.connect
def _start_heartbeat(sender=None, **_):
    hostname = runtime.shown_name(sender.hostname)
    processes = getattr(getattr(sender, "controller", None), "concurrency", 0) or 0
    # The main process's one store, shared by both threads (see runtime.store).
    store = runtime.store()
    store.migrate()
    cpu = cpu_facts()
    log.info("worker %s runs on %s", hostname, describe(cpu))
    app.posterq_heartbeat = runtime.Heartbeat(store, hostname, processes, runtime.model(), cpu,
                                              runtime.model_sha256())
    app.posterq_heartbeat.start()
    # One sweep per pool this worker serves (each under its pool's lock); the sweep's tokens go out
    # as the API sends a new job's, through this app.
    app.posterq_sweepers = [Sweeper(runtime.store(pool), Broker(app, runtime.store(pool).settings, pool))
                            for pool in runtime.pools()]
    for sweeper in app.posterq_sweepers:
        sweeper.start()
    log.info("worker %s ready (%d processes, model %s)", hostname, processes, runtime.model())


@signals.worker_shutdown.connect
def _stop_heartbeat(**_):
    for thread in (*getattr(app, "posterq_sweepers", ()), getattr(app, "posterq_heartbeat", None)):
        if thread is not None:
            thread.stop()


# Celery's command line looks for a module-level app; creating it connects to nothing.
app = create_celery()
