"""Queue behaviour with real worker processes: sharing, a SIGKILLed worker, cancellation."""

import time
from collections import Counter

from harness import assert_exactly_once, eventually
from samples import poster_bytes

from posterq.jobs.keys import Keys


def _poster_folder(root, name: str, count: int, size: tuple[int, int]):
    folder = root / name
    folder.mkdir(exist_ok=True)
    for i in range(count):
        (folder / f"poster_{i:03d}.jpg").write_bytes(poster_bytes(i, size=size))
    return folder


def test_two_workers_share_one_large_job(api, spawn_worker, data_root, service_settings):
    spawn_worker("alpha@test")
    spawn_worker("beta@test")
    folder = _poster_folder(data_root, "shared", service_settings.max_posters_per_job, (600, 900))
    job = api.post("/jobs", json={"directory": str(folder)}).json()
    done = api.wait(job["id"], timeout=120)
    assert_exactly_once(done, done["results"])
    by_worker = Counter(row["worker"] for row in done["results"])
    assert set(by_worker) == {"alpha@test", "beta@test"}, by_worker


def test_a_worker_killed_mid_job_loses_nothing_and_counts_nothing_twice(
        api, spawn_worker, data_root, service_settings, store):
    victim = spawn_worker("victim@test")
    folder = _poster_folder(data_root, "kill", service_settings.max_posters_per_job, (1000, 1500))
    job_id = api.post("/jobs", json={"directory": str(folder)}).json()["id"]
    deadline = time.monotonic() + 60
    batches = Keys(service_settings.key_prefix).batch("*")
    # Kill it while it holds a claimed batch, after it has written at least one.
    while api.get(f"/jobs/{job_id}").json()["done"] < 4 or not any(store.client.scan_iter(match=batches)):
        assert time.monotonic() < deadline, victim.log()
        time.sleep(0.005)
    victim.kill()  # SIGKILL to the worker and its pool process: its batch is never acknowledged
    before = api.get(f"/jobs/{job_id}").json()
    assert before["status"] == "running" and before["done"] < before["total"]

    spawn_worker("rescuer@test")
    # The killed batch comes back after the visibility timeout (4 s here) and a restore sweep.
    done = api.wait(job_id, timeout=120)
    results = api.get(f"/jobs/{job_id}", params={"limit": 1000}).json()["results"]
    assert_exactly_once(done, results)
    workers = Counter(row["worker"] for row in results)
    assert workers["victim@test"] >= 4 and workers["rescuer@test"] > 0, workers
    keys = Keys(service_settings.key_prefix)
    assert store.fair_queue.depth() == 0 and not list(store.client.scan_iter(match=keys.ready("*")))
    # Every batch is finished: a batch's list goes just after its results are written (which may
    # be what finished the job), so the last one may take a moment more than the job did.
    eventually(lambda: not list(store.client.scan_iter(match=keys.batch("*"))),
               "finish of the last batch", 30)
    # The killed batch was delivered again (with the same task id) rather than lost.
    assert store.stats.read().get("redeliveries", 0) >= 1


def test_cancel_removes_what_has_not_run(api, spawn_worker, service_settings, store):
    # No worker yet: the job waits, then is cancelled before anything runs.
    blobs = [("files", (f"p{i}.jpg", poster_bytes(i))) for i in range(6)]
    job_id = api.post("/jobs", files=blobs).json()["id"]
    response = api.delete(f"/jobs/{job_id}")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    keys = Keys(service_settings.key_prefix)
    assert store.client.exists(keys.items(job_id), *[keys.blob(job_id, i) for i in range(6)]) == 0
    spawn_worker("late@test")
    # A job submitted after it runs once the cancelled job's tokens have been consumed (FIFO).
    later = api.post("/jobs", files=[("files", ("x.jpg", poster_bytes(1)))]).json()["id"]
    assert api.wait(later)["done"] == 1
    view = api.get(f"/jobs/{job_id}").json()
    assert (view["status"], view["done"], view["failed"]) == ("cancelled", 0, 0)
    assert {row["status"] for row in view["results"]} == {"pending"}  # never run, never will
    assert store.fair_queue.depth() == 0 and not list(store.client.scan_iter(match=keys.ready("*")))
    # A finished job cannot be cancelled: the answer says so and its results stay.
    refused = api.delete(f"/jobs/{later}")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "job_finished")
    assert [row["status"] for row in api.get(f"/jobs/{later}").json()["results"]] == ["ok"]
