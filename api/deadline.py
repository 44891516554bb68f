"""A deadline on reading a request's body, so a client that trickles bytes cannot hold a thread.

Gunicorn's threaded workers keep a connection out of the thread pool until its first bytes
arrive, but from then on the thread reading the body waits as long as the client takes: a few
clients sending a byte a second would hold every thread. A socket timeout does not help (each
byte arrives in time); so when a request's deadline passes, a timer shuts the socket's reading
side, the blocked read returns at once, and the request answers 408 and frees its thread.
"""

import socket
import threading
import time

from werkzeug.exceptions import RequestTimeout


class BodyDeadline:
    """WSGI middleware: a request's body must arrive within `seconds` of the request's start."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    def __call__(self, environ, start_response):
        """Run the app with wsgi.input under the deadline."""
        sock = environ.get("gunicorn.socket")  # under other servers, reads are only checked for time
        deadline = time.monotonic() + self.seconds
        environ["wsgi.input"] = _TimedInput(environ["wsgi.input"], deadline)
        timer = None
        if sock is not None and _has_body(environ):
            timer = threading.Timer(self.seconds, _stop_reading, (sock,))
            timer.daemon = True
            timer.start()
        try:
            return self.app(environ, start_response)
        finally:
            if timer is not None:
                timer.cancel()


def _has_body(environ) -> bool:
    return environ.get("CONTENT_LENGTH", "") not in ("", "0") or "chunked" in environ.get(
        "HTTP_TRANSFER_ENCODING", "").lower()


def _stop_reading(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RD)  # the answer can still be written
    except OSError:
        pass  # already closed: the request ended meanwhile


class _TimedInput:
    def __init__(self, stream, deadline: float):
        self.stream, self.deadline = stream, deadline

    def _call(self, method, *args):
        if time.monotonic() >= self.deadline:
            raise RequestTimeout("the request body did not arrive in time")
        try:
            data = method(*args)
        except Exception:
            if time.monotonic() >= self.deadline:  # the timer cut the read short
                raise RequestTimeout("the request body did not arrive in time") from None
            raise
        if time.monotonic() >= self.deadline and args and args[0] is not None and 0 <= len(data) < args[0]:
            raise RequestTimeout("the request body did not arrive in time")
        return data

    def read(self, *args):
        return self._call(self.stream.read, *args)

    def readline(self, *args):
        return self._call(self.stream.readline, *args)

    def readlines(self, *args):
        return self._call(self.stream.readlines, *args)

    def __iter__(self):
        while line := self.readline():
            yield line
