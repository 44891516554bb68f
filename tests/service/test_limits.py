"""Small guarantees of the service (issue 11, part 7), over real HTTP, real Redis and real worker
processes: CSV cells a spreadsheet would run, URLs without the Host header, readiness that follows
the workers within seconds, backpressure with Retry-After, and the queue's age in /metrics.

    .venv/bin/python -m pytest -m limits tests/service
"""

import csv
import io
import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from samples import poster_bytes

from posterq.api.backpressure import RETRY_AFTER_MAX, RETRY_AFTER_UNKNOWN, drain_seconds
from posterq.config import Settings
from posterq.exceptions import PosterqError
from posterq.jobs.keys import Keys
from posterq.jobs.stats import BATCH_SECONDS, BATCH_SIZE

pytestmark = pytest.mark.limits


def _files(names: list[str]):
    return [("files", (name, poster_bytes(i), "image/jpeg")) for i, name in enumerate(names)]


def _gauge(api, name: str) -> float:
    for family in text_string_to_metric_families(api.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"/metrics has no {name}")


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted_and_nul_bytes_dropped(api, spawn_worker):
    spawn_worker("csv@test")
    names = ['=HYPERLINK("http://evil.example","x").jpg', "+1.jpg", "-2.jpg", "@SUM(A1).jpg",
             "\tTab.jpg", "nul\x00byte.jpg", "plain-=+@.jpg"]
    response = api.post("/jobs", files=_files(names))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert api.wait(job_id)["done"] == len(names)
    text = api.get(f"/jobs/{job_id}/results", params={"format": "csv"}).text
    assert "\x00" not in text
    paths = [row["path"] for row in csv.DictReader(io.StringIO(text))]
    assert paths == ["'" + name for name in names[:5]] + ["nulbyte.jpg", "plain-=+@.jpg"]
    # JSON Lines is not opened by spreadsheets: its names stay as sent, but for the NUL byte (no
    # file system allows one in a name, and PostgreSQL's text cannot hold one).
    lines = api.get(f"/jobs/{job_id}/results", params={"format": "jsonl"}).text.splitlines()
    assert [json.loads(line)["path"] for line in lines] == [name.replace("\x00", "") for name in names]


def test_urls_in_answers_never_come_from_the_host_header(api, make_api, service_settings):
    forged = {"Host": "evil.example"}
    response = api.post("/jobs", files=_files(["a.jpg"]), headers=forged)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["url"] == f"/jobs/{job['id']}" and job["results_url"] == f"/jobs/{job['id']}/results"
    assert response.headers["Location"] == job["url"]
    document = api.get("/openapi.json", headers=forged).json()
    assert document["servers"] == [{"url": "/"}]
    assert "evil.example" not in response.text + json.dumps(document)
    # With POSTERQ_PUBLIC_URL, answers carry absolute URLs under it, whatever Host says.
    public = make_api(service_settings.replace(public_url="https://posters.example.org/pq/"))
    response = public.post("/jobs", files=_files(["b.jpg"]), headers=forged)
    job = response.json()
    assert job["url"] == f"https://posters.example.org/pq/jobs/{job['id']}"
    assert job["results_url"] == f"https://posters.example.org/pq/jobs/{job['id']}/results"
    assert response.headers["Location"] == job["url"]
    assert public.get("/openapi.json", headers=forged).json()["servers"] == [
        {"url": "https://posters.example.org/pq"}]


@pytest.mark.parametrize("url", ["posters.example.org", "ftp://posters.example.org", "https://x.org/?a=1"])
def test_a_public_url_that_cannot_work_is_refused(url):
    with pytest.raises(PosterqError, match="POSTERQ_PUBLIC_URL"):
        Settings.from_env({"POSTERQ_PUBLIC_URL": url})


def test_readyz_turns_unready_within_seconds_of_the_last_worker_dying(api, spawn_worker_with,
                                                                      service_settings, store):
    # The default heartbeat interval, as a deployment has it (the suite's own is shorter).
    settings = service_settings.replace(heartbeat_interval=Settings().heartbeat_interval)
    worker = spawn_worker_with("mortal@test", settings)
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["workers"] == ["mortal@test"], ready.text
    worker.kill()
    # Redis's own clock, not this machine's speed: a dead worker's heartbeat outlives it by at
    # most three intervals, and /readyz is unready from the moment it is gone.
    heartbeat = store.keys.worker("mortal@test")
    # (-2 when it is gone already: a busy machine may come here after three intervals.)
    assert store.client.pttl(heartbeat) <= 3000 * Settings().heartbeat_interval
    deadline = time.monotonic() + 30
    while store.client.exists(heartbeat) and time.monotonic() < deadline:
        time.sleep(0.05)
    response = api.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not_ready", "redis": True, "database": True, "worker_count": 0,
                               "workers": []}


def test_a_full_queue_refuses_work_with_retry_after(make_api, service_settings, redis_client, spawn_worker):
    api = make_api(service_settings.replace(max_queued_posters=3))
    # A job that could never fit the limit is refused whole as too large (a 429 would send it back
    # for ever), even with nothing queued before it.
    over = api.post("/jobs", files=_files([f"p{i}.jpg" for i in range(5)]))
    assert over.status_code == 413 and over.json()["error"]["code"] == "too_many_posters", over.text
    first = api.post("/jobs", files=_files([f"p{i}.jpg" for i in range(3)]))
    assert first.status_code == 202, first.text  # fills the queue exactly
    keys = Keys(service_settings.key_prefix)
    for response in (api.post("/jobs", files=_files(["late.jpg"])),
                     api.post("/analysis/", data=poster_bytes(1),
                              headers={"Content-Type": "application/octet-stream"})):
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "queue_full"
        # No batch has run and no worker is alive: nothing to estimate the wait from.
        assert response.headers["Retry-After"] == str(RETRY_AFTER_UNKNOWN)
    assert redis_client.hget(keys.waiting, "total") == b"3"
    # Nothing of the refused ones was written: every job key is the first job's.
    assert {name.decode().split(":")[2] for name in redis_client.scan_iter(match=keys.job("*"))} == {
        first.json()["id"]}
    # Once workers have drained the queue, work is taken again.
    spawn_worker("drain@test")
    assert api.wait(first.json()["id"])["status"] == "done"
    assert api.post("/jobs", files=_files(["again.jpg"])).status_code == 202


def test_retry_after_is_the_time_live_workers_need_to_make_room(store):
    assert drain_seconds(store, 100) == RETRY_AFTER_UNKNOWN
    # Batches of 4 posters in 2 s: half a second per poster per process; 2 + 3 processes alive.
    for _ in range(3):
        store.stats.observe_many([(BATCH_SIZE, 4), (BATCH_SECONDS, 2.0)])
    assert drain_seconds(store, 100) == RETRY_AFTER_UNKNOWN  # measured, but nobody to drain
    store.stats.heartbeat("a@test", {"processes": 2})
    store.stats.heartbeat("b@test", {"processes": 3})
    assert drain_seconds(store, 100) == 10
    assert drain_seconds(store, 1) == 1
    assert drain_seconds(store, 10**6) == RETRY_AFTER_MAX


def test_metrics_show_the_age_of_the_oldest_waiting_poster(api, spawn_worker):
    assert _gauge(api, "posterq_queue_age_seconds") == 0.0
    before_first = time.time()
    first = api.post("/jobs", files=_files(["old.jpg"])).json()
    time.sleep(1.5)  # an age apart (a busy machine makes it more, never less)
    before_second = time.time()
    second = api.post("/jobs", files=_files(["new.jpg"])).json()
    age = _gauge(api, "posterq_queue_age_seconds")
    # The older job's, not the newer one's: at least the gap between them, at most its own age.
    assert 1.5 <= age <= time.time() - before_first + 0.01, age
    api.delete(f"/jobs/{first['id']}")
    # A cancelled job's refs are still on the list but wait for nothing: the age is the next job's,
    # no older than the time since it was sent (however slow the machine is today).
    age = _gauge(api, "posterq_queue_age_seconds")
    assert age <= time.time() - before_second + 0.01, age
    spawn_worker("age@test")
    assert api.wait(second["id"])["status"] == "done"
    assert _gauge(api, "posterq_queue_age_seconds") == 0.0
    assert _gauge(api, "posterq_queue_limit_posters") == Settings().max_queued_posters
