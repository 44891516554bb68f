"""Models a job may name, and a rolling upgrade, with real workers holding two versions of a model.

The tiny test bundle is "tiny-test@0.0.1"; a copy of it says it is 0.0.2 (same weights: what
tells the versions apart is what each result records and which worker wrote it).
"""

import csv
import io
import json
import time
from collections import Counter

import pytest
from harness import assert_exactly_once
from samples import encode, make_poster, poster_bytes

from posterq import gate

pytestmark = pytest.mark.models

OLD, NEW = "tiny-test@0.0.1", "tiny-test@0.0.2"


def _files(count: int) -> list:
    return [("files", (f"poster_{i}.jpg", poster_bytes(i), "image/jpeg")) for i in range(count)]


def test_a_job_naming_a_version_runs_only_on_workers_that_hold_it(api, spawn_worker_with, service_settings,
                                                                  new_bundle):
    spawn_worker_with("old@test", service_settings)
    spawn_worker_with("new@test", service_settings.replace(model=str(new_bundle)))
    models = api.get("/models").json()["models"]
    assert [(m["model"], m["version"], m["workers"]) for m in models] == [(OLD, "0.0.1", 1),
                                                                         (NEW, "0.0.2", 1)]

    job = api.post("/jobs", files=_files(40), data={"model": NEW})
    assert job.status_code == 202, job.text
    assert job.json()["requested_model"] == NEW
    done = api.wait(job.json()["id"])
    assert_exactly_once(done, done["results"], 40)
    assert {row["model_version"] for row in done["results"]} == {"0.0.2"}
    assert {row["worker"] for row in done["results"]} == {"new@test"}
    assert done["model"]["version"] == "0.0.2"

    # A name without a version: any worker that holds some version of it.
    by_name = api.post("/jobs?model=tiny-test", files=_files(8)).json()
    done = api.wait(by_name["id"])
    assert_exactly_once(done, done["results"], 8)
    # Without a model: the default pool, which every worker serves whatever it holds.
    plain = api.post("/jobs", files=_files(8)).json()
    assert plain["requested_model"] is None
    assert_exactly_once(api.wait(plain["id"]), api.wait(plain["id"])["results"], 8)


def test_a_model_no_worker_holds_is_refused_or_waits_for_one(make_api, spawn_worker_with, service_settings,
                                                             new_bundle):
    # The operator lists the model it is about to start: jobs may wait for it (POSTERQ_MODELS).
    api = make_api(service_settings.replace(models=NEW))
    spawn_worker_with("old@test", service_settings)
    refused = api.post("/jobs", files=_files(4), data={"model": NEW})
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "model_unavailable" and error["held"] == [OLD] and NEW in error["message"]
    assert api.get("/jobs").json()["jobs"] == []  # nothing of it was kept
    bad = api.post("/jobs", files=_files(1), data={"model": "tiny:*"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_model"

    # A model nobody announced nor listed cannot be waited for: its posters would wait for ever.
    unknown = api.post("/jobs", files=_files(1), data={"model": "tiny-test@9.9.9", "wait_for_model": "true"})
    assert unknown.status_code == 409 and unknown.json()["error"]["code"] == "unknown_model", unknown.text

    waiting = api.post("/jobs", files=_files(12), data={"model": NEW, "wait_for_model": "true"})
    assert waiting.status_code == 202, waiting.text
    job_id = waiting.json()["id"]
    # The 0.0.1 worker, busy with the job after it, must not take it: an event, not a pause, says
    # the worker has looked at the queue since the waiting job came.
    after = api.wait(api.post("/jobs", files=_files(4)).json()["id"])
    assert after["status"] == "done" and {row["worker"] for row in after["results"]} == {"old@test"}
    assert api.get(f"/jobs/{job_id}").json()["status"] == "queued"

    spawn_worker_with("new@test", service_settings.replace(model=str(new_bundle)))
    done = api.wait(job_id)
    assert_exactly_once(done, done["results"], 12)
    assert {(row["worker"], row["model_version"]) for row in done["results"]} == {("new@test", "0.0.2")}


def _until(condition, what, timeout: float = 120) -> None:
    # Poll a state until it holds; the deadline only ends a test that would otherwise hang.
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what()
        time.sleep(0.05)


def test_a_rolling_upgrade_loses_and_repeats_nothing(api, spawn_worker_with, gated_worker, service_settings,
                                                     new_bundle, data_root, store):
    folder = data_root / "rolling"
    folder.mkdir()
    for i in range(200):
        (folder / f"poster_{i:03d}.png").write_bytes(encode(make_poster(i, (120, 180)), "PNG"))
    # The old worker's batches wait at a closed gate (posterq.gate) once they hold their posters:
    # the job cannot end before the upgrade, however fast or slow the machine.
    old, gates = gated_worker("old@test")
    job_id = api.post("/jobs", json={"directory": str(folder)}).json()["id"]
    _until(lambda: (gates / f"{gate.BATCH}.reached").exists(), old.log)

    # The upgrade: start a worker with the new model (it works beside the old one), then a warm
    # shutdown of the old one (SIGTERM: its running batch finishes, what it had reserved goes back
    # to the queue).
    spawn_worker_with("new@test", service_settings.replace(model=str(new_bundle)))
    _until(lambda: api.get(f"/jobs/{job_id}").json()["done"] >= 4, old.log)
    during = api.get(f"/jobs/{job_id}").json()
    assert during["status"] == "running" and during["done"] < 200, during  # the old batch holds its posters
    (gates / gate.BATCH).unlink()
    old.stop(timeout=30)
    assert old.process.returncode == 0, old.log()  # it shut down by itself, not by SIGKILL

    done = api.wait(job_id, timeout=180)
    assert_exactly_once(done, done["results"], 200)
    assert done["failed"] == 0
    versions = Counter((row["worker"], row["model_version"]) for row in done["results"])
    assert set(versions) == {("old@test", "0.0.1"), ("new@test", "0.0.2")}, versions
    # Every downloaded row says the model that labelled it, as the job's results do: the rows of
    # both versions, told apart in the CSV and the JSON Lines alike.
    by_name = {row["name"]: row["model_version"] for row in done["results"]}
    table = csv.DictReader(io.StringIO(api.get(f"/jobs/{job_id}/results").text))
    assert {row["path"]: row["model_version"] for row in table} == by_name
    lines = api.get(f"/jobs/{job_id}/results", params={"format": "jsonl"}).text.splitlines()
    assert {row["path"]: row["model_version"] for row in map(json.loads, lines)} == by_name
    # Nothing repeated: no batch delivered twice, and 200 posters classified in all.
    stats = store.stats.read()
    assert stats.get("redeliveries", 0) == 0 and stats["batch_size_sum"] == 200, stats
