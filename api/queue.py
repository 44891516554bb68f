"""Sending batch tokens to the workers, by task name: the API never imports worker code."""

import logging
import math

from celery import Celery

from posterq.config import Settings
from posterq.jobs.broker import TASK_NAME, celery_config

log = logging.getLogger(__name__)


class Enqueuer:
    """A Celery client (producer only) that sends batch tokens for new jobs."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.celery = Celery("posterq-api", set_as_current=False)
        self.celery.conf.update(celery_config(settings))

    def tokens_for(self, posters: int) -> int:
        """How many batch tasks a job of this many posters needs (see worker.batching)."""
        return math.ceil(posters / self.settings.batch_size)

    def send(self, posters: int) -> int:
        """Send the tokens for a job's posters; return how many were sent."""
        count = self.tokens_for(posters)
        with self.celery.producer_or_acquire() as producer:
            for _ in range(count):
                self.celery.send_task(TASK_NAME, queue=self.settings.queue, producer=producer)
        return count

    def depth(self) -> int:
        """Batch tasks waiting in the Celery queue (not counting ones a worker has reserved)."""
        with self.celery.connection_for_read() as connection:
            return int(connection.default_channel.client.llen(self.settings.queue))
