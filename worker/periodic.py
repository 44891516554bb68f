"""A daemon thread that calls a function every few seconds until stopped (heartbeat, sweep)."""

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls `call` every `interval` seconds in a daemon thread (first at once when `at_once`).

    A call that raises is logged and the next one made on time: Redis down or restarting must not
    end the thread.
    """

    def __init__(self, name: str, interval: float, call: Callable[[], object], at_once: bool = False):
        self.name, self.interval, self.call, self.at_once = name, interval, call, at_once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start calling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop calling; wait a little for a call in progress to end."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        if self.at_once:
            self._call()
        while not self._stop.wait(self.interval):
            self._call()

    def _call(self) -> None:
        try:
            self.call()
        except Exception:
            log.warning("%s failed; trying again in %g s", self.name, self.interval, exc_info=True)
