"""Clients that send their bodies a byte at a time cannot stall the API (`posterq api`, as served).

The server runs as in production (gunicorn, threaded workers), with 1 process of 4 threads here,
so that eight slow clients are twice as many as it has threads. (A client that trickles its
headers still holds a thread until they end, up to gunicorn's 8 KB header limit: docs/service.md
says to put a buffering proxy in front of an API open to the internet.)
"""

import contextlib
import socket
import threading
import time

import pytest
import requests

pytestmark = pytest.mark.slow_clients


class _Trickler(threading.Thread):
    """A POST whose body comes a byte every half second, until the server answers or the test stops it.

    It never gives up by itself: an answer (or a connection the server ends) is the server's doing.
    """

    def __init__(self, port: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.sent = 0  # body bytes sent so far
        self.answer: bytes | None = None

    def run(self) -> None:
        head = (b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as conn:
            try:
                conn.sendall(head)
                while not self.stop.is_set():
                    conn.sendall(b" ")
                    self.sent += 1
                    self.stop.wait(0.5)
                    conn.setblocking(False)
                    try:
                        answer = conn.recv(4096)
                    except BlockingIOError:
                        answer = None
                    finally:
                        conn.setblocking(True)
                    if answer is not None:
                        self.answer = _whole_answer(conn, answer)
                        return
            except OSError as exc:  # the server gave up on us: what it should do
                self.answer = repr(exc).encode()


def _whole_answer(conn: socket.socket, start: bytes) -> bytes:
    """The HTTP answer that begins with `start`, read to its Content-Length (or until the server closes).

    The server may write the head and the body apart: one recv() can end between them.
    """
    conn.settimeout(30)  # only ends a hang: a server that answered sends the rest at once
    answer = start
    while True:
        head, sep, body = answer.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            if len(body) >= length:
                return answer
        more = conn.recv(4096)
        if not more:
            return answer
        answer += more


@contextlib.contextmanager
def _trickling(server, clients: int):
    """`clients` slow clients trickling to the server, each past its headers and first bytes of body."""
    stop = threading.Event()
    tricklers = [_Trickler(server.port, stop) for _ in range(clients)]
    for trickler in tricklers:
        trickler.start()
    try:
        _until(lambda: all(trickler.sent >= 2 or trickler.answer for trickler in tricklers),
               "the slow clients started")
        yield tricklers
    finally:
        stop.set()
        for trickler in tricklers:
            trickler.join(timeout=30)


def _until(condition, what: str, timeout: float = 120) -> None:
    # The deadline only ends a test that would otherwise hang; no answer is judged by its time.
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _healthz(server) -> None:
    # The timeout only ends a hang: far above any answer that is not stuck behind a slow body.
    assert requests.get(server.url + "/healthz", timeout=60).status_code == 200


def test_two_slow_clients_do_not_slow_the_api(service_settings, serve_api):
    # The slow bodies outlast the test (request_timeout far above it), so every /healthz below is
    # answered while both still hold their requests: an order of events, not a time. Sync workers
    # once kept /healthz waiting behind them.
    server = serve_api(service_settings.replace(request_timeout=600))
    with _trickling(server, clients=2) as tricklers:
        # Asked again and again until each slow client has sent more of its body since: the server
        # has taken both into its threads by then, and /healthz still goes past them.
        marks, asked = [trickler.sent for trickler in tricklers], []

        def moved_on() -> bool:
            _healthz(server)
            asked.append(1)
            return len(asked) >= 5 and all(trickler.sent >= mark + 3 or trickler.answer
                                           for trickler, mark in zip(tricklers, marks, strict=True))

        _until(moved_on, "the slow clients sent more of their bodies")
        assert [trickler.answer for trickler in tricklers] == [None, None]  # still trickling, unanswered
        assert all(trickler.is_alive() for trickler in tricklers)


def test_more_slow_clients_than_threads_are_cut_off_with_408(service_settings, serve_api):
    # Eight slow clients on four threads: each slow body holds a thread for request_timeout, then
    # gets 408. /healthz, asked all along, is always answered: never stuck behind them for good.
    server = serve_api(service_settings.replace(request_timeout=3))
    with _trickling(server, clients=8) as tricklers:
        def all_answered() -> bool:
            _healthz(server)
            return all(trickler.answer for trickler in tricklers)

        _until(all_answered, "every slow client was answered")
        _healthz(server)
        answers = [trickler.answer for trickler in tricklers]
    http_answers = [answer for answer in answers if answer.startswith(b"HTTP/1.1")]
    assert len(http_answers) == 8, answers
    assert all(b" 408 " in answer and b'"request_timeout"' in answer for answer in http_answers), answers
