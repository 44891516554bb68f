"""GET /dashboard over real HTTP, with real Redis, PostgreSQL and a real worker process: the jobs of the
caller's key only, each with its rate and ETA; the operators' workers with their rate, the queue, and
the posters per minute counted by the batches that ran.
"""

import secrets
import time

import pytest
from samples import poster_bytes, write_posters

from posterq.api.dashboard_routes import job_summary
from posterq.cpu import cpu_facts, describe

WORKER = "dash-worker@test"
KEY_A = "alpha-" + secrets.token_urlsafe(24)
KEY_B = "bravo-" + secrets.token_urlsafe(24)
OPERATOR = "ops-" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module", autouse=True)
def worker(start_worker):
    """One worker for the module."""
    return start_worker(WORKER)


def _files(count: int):
    return [("files", (f"poster_{i}.jpg", poster_bytes(i))) for i in range(count)]


def _bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _with_worker(server, headers=None, timeout: float = 20) -> dict:
    """The dashboard once it lists the worker: a busy machine can let a heartbeat lapse for a moment."""
    deadline = time.monotonic() + timeout
    while True:
        board = server.get("/dashboard", headers=headers).json()
        names = [one["hostname"] for one in board["operators"]["workers"]]
        if WORKER in names or time.monotonic() > deadline:
            return board
        time.sleep(0.1)  # polling a condition, with a deadline


def test_jobs_rate_workers_and_throughput_after_a_folder_job(api, data_root, worker):
    folder = data_root / "dashboard-shelf"
    write_posters(folder, 12)
    job_id = api.post("/jobs", json={"directory": str(folder)}).json()["id"]
    uploaded = api.post("/jobs", files=_files(2)).json()["id"]
    assert api.wait(job_id)["status"] == "done" and api.wait(uploaded)["status"] == "done"

    board = _with_worker(api)
    # Every job where the service has no keys, newest first, each as the page shows it.
    assert [job["id"] for job in board["jobs"]] == [uploaded, job_id]
    row = board["jobs"][1]
    assert (row["status"], row["source"]) == ("done", "directory")
    assert (row["total"], row["done"], row["failed"]) == (12, 12, 0)
    assert row["model"] == "tiny-test@0.0.1" and row["progress"] == 1
    assert row["posters_per_second"] > 0 and row["eta_s"] is None  # finished: nothing left to wait for
    assert 0 <= row["age_s"] < 120 and row["url"].endswith(f"/jobs/{job_id}")
    assert row.get("name") is None or isinstance(row["name"], str)

    operators = board["operators"]
    [seen] = [one for one in operators["workers"] if one["hostname"] == WORKER]
    assert seen["model"] == "tiny-test@0.0.1" and seen["posters_per_second"] > 0 and seen["last_seen_s"] < 10
    # The worker said its CPU at start, and its heartbeat says it: a host's speed depends on it.
    assert seen["cpu"] == describe(cpu_facts())
    assert f"worker {WORKER} runs on {describe(cpu_facts())}" in worker.log(None)
    # The minute under way (or the one before it, had the minute turned) counted the 14 posters.
    series = operators["throughput"]
    assert len(series) == 61 and series[-1]["at"] > series[0]["at"]
    assert sum(point["posters_per_second"] for point in series[-2:]) > 0
    assert operators["posters_per_second"] > 0
    assert operators["waiting_by_lane"] == {"interactive": 0, "bulk": 0}
    assert operators["queued_by_pool"] == []

    # Paging, as GET /jobs pages.
    first = api.get("/dashboard", params={"limit": 1}).json()
    assert [job["id"] for job in first["jobs"]] == [uploaded] and first["next_offset"] == 1
    second = api.get("/dashboard", params={"limit": 1, "offset": 1}).json()
    assert [job["id"] for job in second["jobs"]] == [job_id] and second["next_offset"] is None
    refused = api.get("/dashboard", params={"limit": 0})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_paging"


def test_a_key_sees_its_own_jobs_and_only_an_operator_the_workers(make_api, service_settings):
    keyed = make_api(service_settings.replace(api_keys=f"{KEY_A}, {KEY_B}", operator_keys=OPERATOR))
    mine = keyed.post("/jobs", files=_files(2), headers=_bearer(KEY_A)).json()["id"]
    theirs = keyed.post("/jobs", files=_files(3), headers=_bearer(KEY_B)).json()["id"]
    for job_id, key in ((mine, KEY_A), (theirs, KEY_B)):
        job = keyed.get(f"/jobs/{job_id}", params={"wait": 20}, headers=_bearer(key)).json()
        assert job["status"] == "done"

    board = keyed.get("/dashboard", headers=_bearer(KEY_A)).json()
    assert [job["id"] for job in board["jobs"]] == [mine]
    # Workers' names and every key's queue are operators' figures, as on /metrics.
    assert board["operators"] is None
    assert [job["id"] for job in keyed.get("/dashboard", headers=_bearer(KEY_B)).json()["jobs"]] == [theirs]
    operator = _with_worker(keyed, _bearer(OPERATOR))
    assert operator["jobs"] == []  # an operator's key is a key too: its own jobs
    assert WORKER in [one["hostname"] for one in operator["operators"]["workers"]]
    assert keyed.get("/dashboard").status_code == 401


def test_a_running_jobs_rate_and_eta(api):
    now = time.time()
    running = {"id": "a" * 32, "status": "running", "source": "upload", "total": 90, "done": 28, "failed": 2,
               "progress": 0.3333, "enumerated": True, "model": {"name": "m", "version": "1"},
               "created_at": now - 15, "claimed_at": now - 11, "started_at": now - 10, "finished_at": None}
    with api.app.test_request_context():
        row = job_summary(running, now)
        listing = job_summary({**running, "enumerated": False}, now)
        waiting = job_summary({**running, "status": "queued", "done": 0, "failed": 0, "started_at": None,
                               "claimed_at": None, "model": None, "requested_model": "m@2"}, now)
    # 30 posters in the 10 s since the first result: 3 posters/s, and 60 left take 20 s.
    assert (row["posters_per_second"], row["eta_s"], row["age_s"], row["model"]) == (3.0, 20.0, 15.0, "m@1")
    assert listing["eta_s"] is None  # the folder's total is not known yet
    assert (waiting["posters_per_second"], waiting["eta_s"], waiting["model"]) == (None, None, "m@2")
