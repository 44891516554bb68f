"""posterq tasks' request class: an ack or reject the lost broker connection cannot take ends nothing."""

import logging

from celery.worker.request import Request as CeleryRequest

log = logging.getLogger(__name__)


class Request(CeleryRequest):
    """Celery's request, whose ack or reject after its broker connection was lost does not end the worker.

    A task that runs while Redis restarts finishes on a message of the lost connection. kombu's
    Redis channel of that connection has dropped its address, and an ack or reject there raises
    AttributeError, which Celery lets end the worker ("Unrecoverable error"). The message is
    still in kombu's unacked hash, which puts it back on its queue (at the channel's close, or
    after the visibility timeout), and the sweep gives back any posters its batch held: nothing
    is lost by going on.
    """

    def acknowledge(self):
        """Ack, or log why the lost connection could not take it."""
        try:
            super().acknowledge()
        except AttributeError:
            self._gave_up("ack")

    def reject(self, requeue=False):
        """Reject, or log why the lost connection could not take it."""
        try:
            super().reject(requeue=requeue)
        except AttributeError:
            self._gave_up("reject")

    def _gave_up(self, what: str) -> None:
        self.acknowledged = True  # never tried again on that channel
        log.warning("task %s: its broker connection was lost, so its %s was not made; kombu restores "
                    "the message and the sweep gives back its posters", self.id, what, exc_info=True)
