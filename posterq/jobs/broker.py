"""The Celery side of posterq's queue, shared by the API and the workers: Celery's settings, the
batch tokens (one task, sent by name, so the API never imports worker code) and the queue's depth.

A token is a Celery message that says "classify up to batch_size ready posters" (posterq.worker.batching);
the posters themselves wait in the job store's ready list.

A directory job's folder listing travels on a queue of its own, the listing queue beside each
batch queue (listing_queue), which every worker reads before its batch queues (ListingFirstCycle):
a listing never waits behind the tokens of another job's posters, only for one of the worker's
processes to end the batch it is running.
"""

import math

from celery import Celery
from kombu.utils.scheduling import round_robin_cycle

from posterq.config import Settings

#: The batch token the API enqueues (by name, so the API never imports worker code).
TASK_NAME = "posterq.classify_batch"
#: The task that lists a directory job's folder in the background (posterq.worker.enumeration).
ENUMERATE_TASK = "posterq.enumerate_folder"
#: The task that writes a finished job's output file (posterq.worker.outputs).
OUTPUT_TASK = "posterq.write_output"
#: What a batch queue's name is followed by to name its listing queue: "/" is in no pool's queue
#: name (posterq.jobs.pools allows no "/" in a model), so no model's queue can be a listing queue.
LISTING_SUFFIX = "/listing"


def listing_queue(queue: str) -> str:
    """The Celery queue of the folder listings that go with the batch queue `queue`."""
    return f"{queue}{LISTING_SUFFIX}"


def is_listing_queue(queue: str) -> bool:
    """True when `queue` is a listing queue (listing_queue)."""
    return queue.endswith(LISTING_SUFFIX)


class ListingFirstCycle(round_robin_cycle):
    """kombu's queue order for a worker: its listing queues first, then its batch queues in turn.

    kombu's Redis transport asks for a message with one BRPOP over every queue a worker reads, in
    the order this gives, and takes it from the first that has one: a listing waiting anywhere is
    taken before any batch token, while the batch queues (the default pool and a model's) still
    take turns as with kombu's own round robin.
    """

    def consume(self, n):
        """The first n queues, listing queues first (each group in kombu's round-robin order)."""
        return sorted(self.items[:n], key=lambda queue: not is_listing_queue(queue))


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
            "queue_order_strategy": f"{__name__}:{ListingFirstCycle.__name__}",
        },
        # A batch is acknowledged after it ran, and given back if its process died meanwhile.
        "task_acks_late": True,
        # A batch still running after this is killed with its process and delivered again, which
        # counts towards max_redeliveries: a decode that hangs cannot hold a worker forever.
        "task_time_limit": settings.batch_time_limit,
        "task_reject_on_worker_lost": True,
        # One reserved batch per process: a slow worker does not sit on batches others could run.
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.queue,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Results live in the job store, not in a Celery result backend.
        "task_ignore_result": True,
        "worker_send_task_events": False,
    }


def kombu_bindings(queue: str) -> list[str]:
    """The keys where kombu's Redis transport records a queue's bindings (written as a worker declares it)."""
    return [f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]


def tokens_for(posters: int, batch_size: int) -> int:
    """How many batch tokens this many ready posters need: one per batch_size of them."""
    return math.ceil(posters / batch_size)


class Broker:
    """Batch tokens sent to one pool's queue, and how many wait there, through one Celery app.

    settings are the pool's (posterq.jobs.pools.pool_settings): its queue is the pool's. Tasks of a
    model's pool carry the pool as an argument, so the worker that runs them uses that pool's store;
    the default pool's carry none, as before pools existed.
    """

    def __init__(self, app: Celery, settings: Settings, pool: str = ""):
        self.app, self.settings, self.pool = app, settings, pool
        self._kwargs = {"pool": pool} if pool else {}
        # A model's pool is not declared by its senders (no `_kombu.binding.*` of kombu's for each
        # model a job names): Celery sends on the anonymous exchange, straight to the queue's list,
        # which is all the workers consuming it read. Only workers declare the queues they serve.
        self._options = {"declare": []} if pool else {}

    def for_pool(self, pool: str, settings: Settings) -> "Broker":
        """A broker over the same Celery app for another pool, whose settings are given."""
        return Broker(self.app, settings, pool)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Broker":
        """A broker with a Celery app of its own, for a process that only sends tokens (the API)."""
        app = Celery("posterq-api", set_as_current=False)
        app.conf.update(celery_config(settings))
        return cls(app, settings)

    def send(self, count: int) -> None:
        """Send count batch tokens over one producer connection (raises what Celery and Redis raise)."""
        with self.app.producer_or_acquire() as producer:
            for _ in range(count):
                self.app.send_task(TASK_NAME, kwargs=self._kwargs, queue=self.settings.queue,
                                   producer=producer, **self._options)

    def send_enumeration(self, job_id: str, countdown: float | None = None) -> None:
        """Send a directory job's folder listing task to the listing queue, after countdown s if given."""
        self.app.send_task(ENUMERATE_TASK, args=[job_id], kwargs=self._kwargs,
                           queue=listing_queue(self.settings.queue), countdown=countdown, **self._options)

    def send_output(self, job_id: str) -> None:
        """Send the task that writes a finished job's output file."""
        self.app.send_task(OUTPUT_TASK, args=[job_id], kwargs=self._kwargs, queue=self.settings.queue,
                           **self._options)

    def forget_queue(self) -> None:
        """Delete a model pool's Celery queue (its list of tokens) and any binding kombu keeps of it.

        For a pool whose last job has ended: tokens left there have no posters to claim, and a
        token of a job made meanwhile is sent again by the sweep of a worker that serves the pool.
        """
        if not self.pool:
            return
        queues = (self.settings.queue, listing_queue(self.settings.queue))
        with self.app.connection_for_write() as connection:
            connection.default_channel.client.delete(*queues, *(key for queue in queues
                                                                for key in kombu_bindings(queue)))

    def queued(self) -> int:
        """Batch tokens waiting in the queue, not counting ones a worker has reserved."""
        # The broker's own connection, so the count comes from wherever broker_url points; the
        # Redis transport keeps a queue as a list under the queue's name.
        with self.app.connection_for_read() as connection:
            return int(connection.default_channel.client.llen(self.settings.queue))
