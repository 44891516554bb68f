"""The runs of bench.fairness: one key's jobs and /analysis/ calls, timed and followed, through
posterq.client.ServiceClient (a session per thread)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import urllib3

from bench.service import JOB_TIMEOUT
from posterq.client import ServiceClient
from posterq.exceptions import PosterqError
from tests.harness import all_results, exactly_once_problems, is_final

SMALL = 20
#: Seconds between two sequential /analysis/ calls (idle and during the bulk job alike: a poster
#: after a pause costs more than one in a tight loop, so both sides pause the same).
PAUSE = 0.25
#: Seconds between two polls of a job's progress.
POLL = 0.25
#: How long key B waits after key A's bulk job is answered before submitting its small job.
SMALL_DELAY = 1.0
#: Seconds one request may take (a bulk job's upload included).
TIMEOUT = 600
#: Seconds the server holds a GET of a job that is not final yet (its long poll).
LONG_POLL = 30


@dataclass(frozen=True)
class Key:
    """One API key of one service."""

    url: str
    key: str

    def session(self) -> ServiceClient:
        """A client of its own under this key (a requests Session is not shared between threads)."""
        return ServiceClient(self.url, timeout=TIMEOUT, api_key=self.key)


def submit(client: ServiceClient, body: tuple[bytes, str]) -> tuple[str, float]:
    """POST a prepared multipart body as a job; (its id, the wall time just before the POST)."""
    sent = time.time()
    return client.submit_encoded(*body)["id"], sent


def final(client: ServiceClient, job_id: str) -> dict:
    """The job (one result row) once final, waiting on the server's long poll."""
    return client.wait([job_id], poll=LONG_POLL, timeout=JOB_TIMEOUT)[0]


def analyse(client: ServiceClient, data: bytes) -> tuple[int | str, float]:
    """POST /analysis/ with one poster; (200, or 504 on the server's timeout, else the error's code; ms)."""
    started = time.perf_counter()
    try:
        client.analyse(data)
        status: int | str = 200
    except PosterqError as exc:
        status = 504 if exc.code == "timeout" else exc.code
    return status, 1000 * (time.perf_counter() - started)


def problems(client: ServiceClient, job: dict, expected: int) -> list[str]:
    """What breaks "each poster exactly once" in a final job (none: it holds)."""
    return exactly_once_problems(job, all_results(client.api_url, job["id"], job["total"], client.http),
                                 expected)


class Watcher(threading.Thread):
    """Polls done + failed of the jobs it is given every POLL s, as (seconds since origin, posters)."""

    def __init__(self, origin: float):
        super().__init__(daemon=True)
        self.origin = origin
        self.series: dict[str, list[list[float]]] = {}
        self.jobs: dict[str, tuple[ServiceClient, str]] = {}
        self.halt, self.lock = threading.Event(), threading.Lock()

    def watch(self, label: str, key: Key, job_id: str, sent: float) -> None:
        """Start following a job, which had none done at `sent`."""
        with self.lock:
            self.jobs[label] = (key.session(), job_id)
            self.series[label] = [[round(sent - self.origin, 3), 0]]

    def run(self) -> None:
        """Poll until stopped; a final job is polled no more."""
        final: set[str] = set()
        while not self.halt.is_set():
            with self.lock:
                jobs = [(label, *entry) for label, entry in self.jobs.items() if label not in final]
            for label, client, job_id in jobs:
                job = client.job(job_id)
                self.series[label].append([round(time.time() - self.origin, 3), job["done"] + job["failed"]])
                if is_final(job):
                    final.add(label)
            self.halt.wait(POLL)

    def stop(self) -> dict[str, list[list[float]]]:
        """Stop polling; the series."""
        self.halt.set()
        self.join(timeout=30)
        return self.series


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), rounded, or None without values."""
    return round(float(np.percentile(values, q)), 1) if values else None


def analysis_calls(key: Key, blobs: list[bytes], count: int, origin: float,
                   stop: threading.Event | None = None) -> list[dict]:
    """Up to `count` sequential /analysis/ calls, PAUSE s apart, until stop is set."""
    client, calls = key.session(), []
    for n in range(count):
        if stop is not None and stop.is_set():
            break
        at = time.time() - origin
        status, ms = analyse(client, blobs[n % len(blobs)])
        calls.append({"at": round(at, 3), "ms": round(ms, 1), "status": status})
        time.sleep(PAUSE)
    return calls


def latency(calls: list[dict]) -> dict:
    """p50, p95 and max of the calls (every call counts, a 504 at its time too), and failures."""
    ms = [call["ms"] for call in calls]
    return {"calls": len(calls), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
            "max_ms": round(max(ms), 1) if ms else None,
            "status_504": sum(call["status"] == 504 for call in calls),
            "failed": sum(call["status"] != 200 for call in calls)}


def timed_job(key: Key, body: tuple[bytes, str], expected: int, watcher: Watcher | None = None,
              label: str = "", check: bool = True) -> dict:
    """Submit a job and wait for it; its times on the client's clock and the job's own."""
    client = key.session()
    job_id, sent = submit(client, body)
    if watcher is not None:
        watcher.watch(label, key, job_id, sent)
    job = final(client, job_id)
    seen = time.time()
    own = job["finished_at"] - job["created_at"]
    return {"job": job_id, "status": job["status"], "posters": job["total"], "sent": sent,
            "created_at": job["created_at"], "finished_at": job["finished_at"], "final_seen": seen,
            "seconds": round(seen - sent, 3), "posters_per_second": round(job["total"] / (seen - sent), 1),
            "own_seconds": round(own, 3), "own_posters_per_second": round(job["total"] / own, 1),
            "problems": problems(client, job, expected) if check else []}


def lone_bulk(clients: dict[str, Key], body: tuple[bytes, str], size: int) -> dict:
    """Key A's bulk job on an otherwise idle service, with its progress."""
    origin = time.time()
    watcher = Watcher(origin)
    watcher.start()
    run = timed_job(clients["A"], body, size, watcher, "A")
    run["progress"] = watcher.stop()["A"]
    run["origin"] = origin
    return run


def during_bulk(clients: dict[str, Key], bulk: tuple[bytes, str], small: tuple[bytes, str], size: int,
                blobs: list[bytes], max_calls: int) -> dict:
    """(b) and (c): key A's bulk job; A's /analysis/ calls while it runs; B's small job 1 s in."""
    origin = time.time()
    watcher = Watcher(origin)
    watcher.start()
    client = clients["A"].session()
    job_id, sent = submit(client, bulk)
    answered = time.time()
    watcher.watch("A bulk", clients["A"], job_id, sent)
    stop, found = threading.Event(), {}

    def call() -> None:
        found["calls"] = analysis_calls(clients["A"], blobs, max_calls, origin, stop)

    def second_key() -> None:
        time.sleep(max(0.0, answered + SMALL_DELAY - time.time()))
        found["small"] = timed_job(clients["B"], small, SMALL, watcher, "B small")

    threads = [threading.Thread(target=call), threading.Thread(target=second_key)]
    for thread in threads:
        thread.start()
    job = final(client, job_id)
    stop.set()
    for thread in threads:
        thread.join()
    series = watcher.stop()
    return {"bulk": {"job": job_id, "seconds": round(time.time() - sent, 2),
                     "own_seconds": round(job["finished_at"] - job["created_at"], 2),
                     "problems": problems(client, job, size)},
            "calls": found["calls"], "small": found["small"], "progress": series,
            "small_submitted_after_s": round(found["small"]["sent"] - answered, 2)}


def two_keys(clients: dict[str, Key], body: tuple[bytes, str], size: int) -> dict:
    """(d): keys A and B post the same bulk job at the same moment; each one's rate and share."""
    origin = time.time()
    watcher = Watcher(origin)
    watcher.start()
    runs, start = {}, threading.Barrier(2)

    def run(key: str) -> None:
        start.wait()
        runs[key] = timed_job(clients[key], body, size, watcher, key)

    threads = [threading.Thread(target=run, args=(key,)) for key in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    series = watcher.stop()
    a, b = runs["A"], runs["B"]
    # The shares count only while both jobs were in the queue: from the later creation to the
    # earlier finish, each job's posters done from its polled progress.
    begin, end = max(a["created_at"], b["created_at"]), min(a["finished_at"], b["finished_at"])
    shares = {"A": None, "B": None}
    if end - begin > 2 * POLL:
        done = {key: np.interp([begin - origin, end - origin], *zip(*series[key], strict=True))
                for key in ("A", "B")}
        moved = {key: float(done[key][1] - done[key][0]) for key in ("A", "B")}
        total = sum(moved.values())
        shares = {key: round(moved[key] / total, 3) if total else None for key in ("A", "B")}
    seconds = max(a["final_seen"], b["final_seen"]) - min(a["sent"], b["sent"])
    return {"A": a, "B": b, "share_A": shares["A"], "share_B": shares["B"],
            "overlap_s": round(end - begin, 2), "seconds": round(seconds, 2),
            "total_posters_per_second": round((a["posters"] + b["posters"]) / seconds, 1),
            "progress": series, "origin": origin}


def warm_up(clients: dict[str, Key], body: tuple[bytes, str], blobs: list[bytes]) -> None:
    """Untimed: every pool process loads its model and its solo interpreter."""
    for key in ("A", "B"):
        client = clients[key].session()
        final(client, submit(client, body)[0])
    client = clients["A"].session()
    for data in blobs[:4]:
        analyse(client, data)


def multipart(named: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """Posters as one multipart body (field `files`)."""
    return urllib3.encode_multipart_formdata([("files", item) for item in named])
