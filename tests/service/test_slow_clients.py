"""Clients that send their bodies a byte at a time cannot stall the API (`posterq api`, as served).

The server runs as in production (gunicorn, threaded workers), with 1 process of 4 threads here,
so that eight slow clients are twice as many as it has threads. (A client that trickles its
headers still holds a thread until they end, up to gunicorn's 8 KB header limit: docs/service.md
says to put a buffering proxy in front of an API open to the internet.)
"""

import socket
import threading
import time

import pytest
import requests

pytestmark = pytest.mark.slow_clients


def _trickle(port: int, stop: threading.Event, answers: list) -> None:
    # A POST whose body comes a byte every half second.
    head = (b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        try:
            conn.sendall(head)
            while not stop.is_set():
                conn.sendall(b" ")
                time.sleep(0.5)
                conn.setblocking(False)
                try:
                    answer = conn.recv(4096)
                except BlockingIOError:
                    answer = None
                finally:
                    conn.setblocking(True)
                if answer is not None:
                    answers.append(answer)
                    return
        except OSError as exc:  # the server gave up on us: what it should do
            answers.append(repr(exc).encode())


def _healthz_while_trickling(server, clients: int, seconds: float) -> tuple[float, list]:
    # The slowest /healthz answer while `clients` trickle their bodies, and what they were told.
    stop, answers = threading.Event(), []
    threads = [threading.Thread(target=_trickle, args=(server.port, stop, answers), daemon=True)
               for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        slowest = 0.0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # the API keeps answering the whole time
            started = time.monotonic()
            assert requests.get(server.url + "/healthz", timeout=20).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    return slowest, answers


def test_two_slow_clients_do_not_slow_the_api(service_settings, serve_api):
    # A /healthz held behind a slow body waits out its request_timeout (10 s); half of it is a
    # bound no loaded machine reaches while the API is free.
    server = serve_api(service_settings.replace(request_timeout=10))
    slowest, _ = _healthz_while_trickling(server, clients=2, seconds=4)
    assert slowest < 5, slowest  # sync workers once made it wait far longer


def test_more_slow_clients_than_threads_are_cut_off_with_408(service_settings, serve_api):
    server = serve_api(service_settings.replace(request_timeout=3))
    slowest, answers = _healthz_while_trickling(server, clients=8, seconds=12)
    # Each slow body holds a thread for at most request_timeout, then gets 408: eight clients on
    # four threads are two rounds of it, so /healthz waits at most two timeouts, not forever.
    assert slowest < 2 * 3 + 4, slowest  # under the 12 s it is watched for: never stuck
    http_answers = [answer for answer in answers if answer.startswith(b"HTTP/1.1")]
    assert len(http_answers) == 8, answers
    assert all(b" 408 " in answer and b'"request_timeout"' in answer for answer in http_answers), answers
