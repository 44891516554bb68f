"""A small HTTP client of the posterq service: limits, submit, poll, download."""

import base64
import http.client
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from posterq.exceptions import PosterqError
from posterq.files import display_name
from posterq.jobs.keys import JobStatus
from posterq.results import scored_genres

if TYPE_CHECKING:
    import pandas

log = logging.getLogger(__name__)

#: The environment variable `posterq submit` reads its API key from (a key on the command line
#: is visible to every user of the machine in the process list).
API_KEY_ENV = "POSTERQ_API_KEY"
#: Times a request refused with 429 or 503 is sent again before the refusal is reported.
RETRIES = 8
#: Times a request whose connection dropped before the answer is sent again. A refused
#: connection is not retried: nothing listens there, and waiting will not change that.
DROPPED_RETRIES = 2
#: Seconds a submission waits for an earlier try of itself that is still being written.
IN_PROGRESS_WAIT = 30


class ServiceClient:
    """Talks to one posterq API; every failure is a PosterqError with the server's code.

    retry: send again what the server refused as busy and a request whose connection dropped (as
    `posterq submit` does); False reports each answer as it comes, for callers that watch the
    service's every answer themselves (the test harness, benchmarks).
    """

    def __init__(self, api_url: str, timeout: float = 120, session: requests.Session | None = None,
                 api_key: str | None = None, retry: bool = True):
        self.api_url = with_scheme(api_url).rstrip("/")
        self.timeout = timeout
        self.http = session or requests.Session()
        if retry:
            # Only what the server asked for is retried: 429 (the queue is full) and 503 (Redis or
            # the queue unavailable) mean nothing was written, so the same request is sent again
            # after the server's Retry-After; a connection dropped mid-request is tried again a few
            # times. A refused connection (connect=0) fails at once: nothing listens, and waiting
            # changes nothing.
            retries = Retry(total=None, connect=0, other=0, read=DROPPED_RETRIES, status=RETRIES,
                            status_forcelist=(429, 503), allowed_methods=None, backoff_factor=1,
                            respect_retry_after_header=True, raise_on_status=False)
            self.http.mount(self.api_url + "/", HTTPAdapter(max_retries=retries))
        if api_key:
            self.http.headers["Authorization"] = f"Bearer {api_key}"

    def close(self) -> None:
        """Close the client's connections (its session's)."""
        self.http.close()

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """The server's answer to METHOD path, whatever its status (PosterqError only when unreachable)."""
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self.http.request(method, self.api_url + path, **kwargs)
        except requests.RequestException as exc:
            raise PosterqError(f"cannot reach {self.api_url}: {reason(exc)}", "unreachable") from None

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                code, message = error["code"], error["message"]
            except (ValueError, KeyError, TypeError):
                # Not the API's error shape (a proxy's page, a wrong --api): one line that says so.
                code = f"http_{response.status_code}"
                message = not_posterq(response, self.api_url)
            raise PosterqError(f"{method} {path}: {message}", code)
        return response

    def limits(self) -> dict:
        """The server's limits (GET /limits)."""
        return self._call("GET", "/limits").json()

    def metrics(self) -> str:
        """The server's Prometheus metrics as text (GET /metrics)."""
        return self._call("GET", "/metrics").text

    def submit(self, files: list[tuple[str, bytes]], top_k: int | None = None,
               idempotency_key: str | None = None, name: str | None = None, reuse: bool = True) -> dict:
        """Upload (name, bytes) pairs as one job (called `name`, if given); return the job.

        reuse=False classifies every poster again, even one the model labelled before (posterq.jobs.reuse).

        With an idempotency_key every try of this submission (a retry after a dropped connection,
        or a later call with the same key) gets the one job it made.
        """
        # A backslash goes doubled: the filename is a quoted-string, in which the server (werkzeug)
        # reads a backslash and the character after it as that character alone, so that a name
        # with one (an escaped name such as bad\xff.jpg, or a\b.jpg) would come back as another.
        parts = [("files", (name.replace("\\", "\\\\"), data, "application/octet-stream"))
                 for name, data in files]
        data = {**({"top_k": str(top_k)} if top_k else {}), **({"name": name} if name else {}),
                **({} if reuse else {"reuse": "false"})} or None
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        deadline = time.monotonic() + IN_PROGRESS_WAIT
        while True:
            try:
                return self._call("POST", "/jobs", files=parts, data=data, headers=headers).json()
            except PosterqError as exc:
                # An earlier try of this very submission is still being written (or was cut off
                # and is about to be let go): its answer comes in a few seconds.
                if exc.code != "submission_in_progress" or time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def submit_directory(self, folder: str | Path, name: str | None = None, reuse: bool = True) -> dict:
        """Submit a folder under one of the server's data roots as one job (listed by the server).

        reuse=False classifies every poster again (posterq.jobs.reuse).
        """
        body = {"directory": str(folder), **({"name": name} if name else {}),
                **({} if reuse else {"reuse": False})}
        return self._call("POST", "/jobs", json=body).json()

    def submit_encoded(self, body: bytes, content_type: str) -> dict:
        """POST a multipart body encoded beforehand (field `files`) as one job; return the job."""
        # For benchmarks: the encoding is done before any clock starts, and the same body is sent again.
        return self._call("POST", "/jobs", data=body, headers={"Content-Type": content_type}).json()

    def analyse(self, data: bytes) -> dict:
        """Label one poster now (POST /analysis/, the bytes as base64 text); the answer."""
        return self._call("POST", "/analysis/", data=base64.b64encode(data),
                          headers={"Content-Type": "text/plain"}).json()

    def jobs(self, status: str | None = None, offset: int = 0, limit: int = 100, name: str | None = None
             ) -> dict:
        """A page of this key's jobs, newest first (GET /jobs): {"jobs", "next_offset", ...}.

        name: only the jobs whose name contains it.
        """
        params = {"offset": offset, "limit": limit, **({"status": status} if status else {}),
                  **({"name": name} if name else {})}
        return self._call("GET", "/jobs", params=params).json()

    def cancel(self, job_id: str) -> dict:
        """Cancel what of a job has not run (DELETE /jobs/<id>); return the job."""
        return self._call("DELETE", f"/jobs/{job_id}").json()

    def download(self, job_id: str, stream: IO[bytes], fmt: str = "csv") -> int:
        """Copy a job's results as CSV or JSON Lines into a binary stream; return the bytes copied."""
        response = self._call("GET", f"/jobs/{job_id}/results", params={"format": fmt}, stream=True)
        copied = 0
        for chunk in response.iter_content(1 << 16):
            stream.write(chunk)
            copied += len(chunk)
        return copied

    def job(self, job_id: str, offset: int = 0, limit: int = 0, wait: float = 0) -> dict:
        """A job's status and a page of results (none with limit 0); with wait, once final or after wait s."""
        # What the server defaults to goes unsaid: the first page needs no offset, an answer now no wait.
        params = {**({"offset": offset} if offset else {}), "limit": limit,
                  **({"wait": wait} if wait else {})}
        return self._call("GET", f"/jobs/{job_id}", params=params, timeout=self.timeout + wait).json()

    def results(self, job_id: str) -> Iterator[dict]:
        """Every result row of a job (JSON Lines download)."""
        response = self._call("GET", f"/jobs/{job_id}/results", params={"format": "jsonl"}, stream=True)
        for line in response.iter_lines(decode_unicode=True):
            if line:
                yield json.loads(line)

    def results_frame(self, job_id: str) -> "pandas.DataFrame":
        """A job's results so far as a pandas DataFrame, the columns of its CSV (posterq.frames.to_frame)."""
        from posterq.frames import to_frame  # pandas loads here, for the callers that ask

        rows = list(self.results(job_id))
        # The job view does not repeat its model's genres: GET /limits has them, in model order.
        return to_frame(rows, scored_genres(rows, self.limits()["genres"]))

    def wait(self, job_ids: list[str], poll: float = 1.0, on_progress=None,
             timeout: float | None = None) -> list[dict]:
        """Wait until every job is final; on_progress(finished posters) is called as they advance.

        One request waits on the server (?wait=poll) for the first unfinished job, which answers
        the moment it finishes; the others are refreshed after it, for the progress count.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        jobs = {job_id: self.job(job_id) for job_id in job_ids}
        while True:
            if on_progress:
                on_progress(sum(job["done"] + job["failed"] for job in jobs.values()))
            pending = [job_id for job_id in job_ids if not JobStatus(jobs[job_id]["status"]).final]
            if not pending:
                return [jobs[job_id] for job_id in job_ids]
            left = poll if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise PosterqError(f"jobs not finished after {timeout} s", "timeout")
            jobs[pending[0]] = self.job(pending[0], wait=max(0.05, min(poll, left)))
            for job_id in pending[1:]:
                jobs[job_id] = self.job(job_id)

    def repeat(self, job_id: str, action: str, model: str | None = None) -> dict:
        """A new job of a final job's failed posters ("retry"), or of its posters with `model` ("rerun")."""
        return self._call("POST", f"/jobs/{job_id}/{action}", json={"model": model} if model else {}).json()


def with_scheme(api_url: str) -> str:
    """The URL as given, or with http:// in front when it names no scheme ("127.0.0.1:8000")."""
    return api_url if "://" in api_url else "http://" + api_url


def reason(exc: BaseException) -> str:
    """The root cause of a failed request in a few words ("Connection refused"), not urllib3's chain."""
    seen = exc
    while seen is not None:
        if isinstance(seen, http.client.HTTPException):
            # Something listens there but does not speak HTTP (a Redis port, say): no answer came.
            return "no HTTP answer came (is --api the posterq service's root URL?)"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        if isinstance(getattr(seen, "reason", None), BaseException):
            seen = seen.reason
        else:
            # urllib3's ProtocolError holds its cause second: ("Connection aborted.", RemoteDisconnected).
            cause = next((arg for arg in seen.args if isinstance(arg, BaseException)), None)
            seen = cause or seen.__cause__ or seen.__context__
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def not_posterq(response: requests.Response, api_url: str) -> str:
    """Why an answer without posterq's JSON error fails, in one line: a wrong --api, most likely."""
    return (f"{api_url} answered {response.status_code} {response.reason} without a posterq error: --api is "
            "the service's root URL (http://HOST:PORT, where GET /limits answers)")


def relative_name(path: Path, root: Path) -> str:
    """The name a file is uploaded under: its path below the submitted folder (\\xNN for non-UTF-8 bytes)."""
    # A multipart header cannot carry bytes that are not UTF-8: the name goes as the row's name
    # (posterq.files.display_name), which is also how `posterq label` names it.
    return display_name(path.relative_to(root).as_posix())
