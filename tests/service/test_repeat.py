"""Retry and rerun (api/rerun_routes.py) over real HTTP with real workers: a new job of a final job's
failed posters, or of its posters with another model, linked to the job it repeats."""

import uuid

from commands import posterq
from samples import poster_bytes, write_posters

OLD, NEW = "tiny-test@0.0.1", "tiny-test@0.0.2"


def _error(response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["error"]["code"]


def test_retry_makes_a_job_of_the_failed_posters_only(api, spawn_worker, data_root):
    spawn_worker("retry@test")
    folder = data_root / f"retry-{uuid.uuid4().hex[:8]}"
    write_posters(folder, 3)
    (folder / "broken.jpg").write_bytes(b"not a poster")
    first = api.wait(api.post("/jobs", json={"directory": str(folder), "top_k": 2,
                                             "name": "catalogue"}).json()["id"])
    assert (first["status"], first["done"], first["failed"]) == ("done", 3, 1)
    (folder / "broken.jpg").write_bytes(poster_bytes(7))  # the user mends the broken file

    retried = api.post(f"/jobs/{first['id']}/retry", headers={"Idempotency-Key": "retry-1"})
    assert retried.status_code == 202, retried.text
    job = retried.json()
    assert job["retry_of"] == first["id"] and job["total"] == 1 and job["top_k"] == 2
    # It keeps the job's name and shows the same folder.
    assert (job["name"], job["folder"]) == ("catalogue", folder.name) == (first["name"], first["folder"])
    assert retried.headers["Location"] == job["url"]
    done = api.wait(job["id"])
    assert (done["status"], done["done"], done["failed"], done["retry_of"]) == ("done", 1, 0, first["id"])
    assert (done["name"], done["folder"]) == ("catalogue", folder.name)
    assert [row["name"] for row in done["results"]] == ["broken.jpg"]
    assert len(done["results"][0]["genres"]) == 2
    # The same Idempotency-Key answers with the same job, as POST /jobs does.
    again = api.post(f"/jobs/{first['id']}/retry", headers={"Idempotency-Key": "retry-1"})
    assert again.status_code == 202 and again.json()["id"] == job["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    # The new job has no failed posters: nothing to retry.
    assert _error(api.post(f"/jobs/{job['id']}/retry"), 409) == "no_failed_posters"


def test_an_upload_retry_needs_bytes_the_service_no_longer_keeps(api, spawn_worker):
    spawn_worker("gone@test")
    files = [("files", ("good.jpg", poster_bytes(1))), ("files", ("bad.jpg", b"not a poster"))]
    job = api.wait(api.post("/jobs", files=files).json()["id"])
    assert job["failed"] == 1
    # An upload's bytes leave Redis once its poster is labelled, failed or not.
    assert _error(api.post(f"/jobs/{job['id']}/retry"), 410) == "posters_gone"
    assert _error(api.post(f"/jobs/{job['id']}/rerun", json={"model": OLD}), 410) == "posters_gone"


def test_retry_and_rerun_refuse_jobs_they_cannot_repeat(make_api, service_settings):
    api = make_api(service_settings.replace(models=NEW))
    waiting = api.post("/jobs", files=[("files", ("a.jpg", poster_bytes(1)))],
                       data={"model": NEW, "wait_for_model": "true"}).json()
    assert _error(api.post(f"/jobs/{waiting['id']}/retry"), 409) == "job_not_final"
    assert _error(api.post(f"/jobs/{waiting['id']}/rerun", json={"model": NEW}), 409) == "job_not_final"
    assert _error(api.post(f"/jobs/{uuid.uuid4().hex}/retry"), 404) == "job_not_found"
    assert _error(api.post(f"/jobs/{waiting['id']}/rerun", data=b"[1]",
                           headers={"Content-Type": "application/json"}), 400) == "bad_json"
    api.delete(f"/jobs/{waiting['id']}")
    assert _error(api.post(f"/jobs/{waiting['id']}/rerun", json={}), 400) == "bad_model"


def test_another_keys_job_cannot_be_retried(make_api, service_settings, spawn_worker, data_root):
    spawn_worker("keys@test")
    api = make_api(service_settings.replace(api_keys="key-alpha-0123456789, key-bravo-0123456789"))
    folder = data_root / f"keys-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not a poster")
    alpha = {"Authorization": "Bearer key-alpha-0123456789"}
    bravo = {"Authorization": "Bearer key-bravo-0123456789"}
    job_id = api.post("/jobs", json={"directory": str(folder)}, headers=alpha).json()["id"]
    assert api.get(f"/jobs/{job_id}", params={"wait": 20}, headers=alpha).json()["status"] == "failed"
    assert _error(api.post(f"/jobs/{job_id}/retry", headers=bravo), 404) == "job_not_found"
    other_rerun = api.post(f"/jobs/{job_id}/rerun", json={"model": OLD}, headers=bravo)
    assert _error(other_rerun, 404) == "job_not_found"
    retried = api.post(f"/jobs/{job_id}/retry", headers=alpha)
    assert retried.status_code == 202 and retried.json()["retry_of"] == job_id


def test_rerun_labels_a_folder_job_again_with_another_model(api, spawn_worker_with, service_settings,
                                                            new_bundle, data_root):
    spawn_worker_with("old@test", service_settings)
    spawn_worker_with("new@test", service_settings.replace(model=str(new_bundle)))
    folder = data_root / f"rerun-{uuid.uuid4().hex[:8]}"
    write_posters(folder, 5)
    first = api.wait(api.post("/jobs", json={"directory": str(folder), "model": OLD}).json()["id"])
    assert {row["model_version"] for row in first["results"]} == {"0.0.1"}

    rerun = api.post(f"/jobs/{first['id']}/rerun", json={"model": NEW})
    assert rerun.status_code == 202, rerun.text
    assert rerun.json()["rerun_of"] == first["id"] and rerun.json()["requested_model"] == NEW
    done = api.wait(rerun.json()["id"])
    assert (done["status"], done["done"], done["rerun_of"]) == ("done", 5, first["id"])
    assert [row["name"] for row in done["results"]] == [row["name"] for row in first["results"]]
    assert {row["model_version"] for row in done["results"]} == {"0.0.2"}
    assert {row["worker"] for row in done["results"]} == {"new@test"}


def test_posterq_jobs_retry_and_rerun(api, spawn_worker, data_root):
    spawn_worker("cli-retry@test")
    folder = data_root / f"cli-{uuid.uuid4().hex[:8]}"
    write_posters(folder, 2)
    (folder / "broken.jpg").write_bytes(b"not a poster")
    first = api.wait(api.post("/jobs", json={"directory": str(folder)}).json()["id"])
    (folder / "broken.jpg").write_bytes(poster_bytes(3))
    base = ["--api", api.url]
    retried = posterq("jobs", "retry", first["id"], "--wait", *base)
    assert retried.returncode == 0, retried.stderr
    new_id = retried.stdout.strip()
    assert new_id in retried.stderr and "done" in retried.stderr and "1/1 posters" in retried.stderr
    assert api.get(f"/jobs/{new_id}").json()["retry_of"] == first["id"]
    rerun = posterq("jobs", "rerun", first["id"], "--model", OLD, *base)
    assert rerun.returncode == 0, rerun.stderr
    assert api.wait(rerun.stdout.strip())["rerun_of"] == first["id"]
    nothing = posterq("jobs", "retry", new_id, *base)
    assert nothing.returncode == 1 and "(no_failed_posters)" in nothing.stderr
    assert posterq("jobs", "rerun", first["id"], *base).returncode == 2  # --model is required
