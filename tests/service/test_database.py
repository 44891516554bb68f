"""The results database: a PostgreSQL that goes down mid-job loses nothing, SQLite where none is
configured, and output files written beside the folder when a job finishes."""

import csv
import io
import time

import pytest
from harness import PostgresServer, all_results, assert_exactly_once, is_final, wait_for_job
from samples import poster_bytes, write_posters

pytestmark = pytest.mark.database


def _uploads(count: int, start: int = 0):
    return [("files", (f"p{i}.jpg", poster_bytes(i))) for i in range(start, start + count)]


def test_a_database_down_mid_job_refuses_new_jobs_and_loses_nothing(service_settings,
                                                                    spawn_worker_with, make_api):
    postgres = PostgresServer().start()
    try:
        settings = service_settings.replace(database_url=postgres.url, max_posters_per_job=200)
        worker = spawn_worker_with("db-down@test", settings)
        api = make_api(settings)
        response = api.post("/jobs", files=_uploads(120))
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        wait_for_job(api.url, job_id, until=lambda job: job["done"] >= 8, limit=1)
        postgres.stop()
        refused = api.post("/jobs", files=_uploads(1))
        assert (refused.status_code, refused.json()["error"]["code"]) == (503, "database_unavailable")
        assert refused.headers["Retry-After"]
        assert api.get(f"/jobs/{job_id}").status_code == 503
        assert api.get("/readyz").json()["database"] is False
        postgres.start()
        job = wait_for_job(api.url, job_id, timeout=120, ride_out=True)
        assert_exactly_once(job, all_results(api.url, job_id, 120), 120)
        assert worker.process.poll() is None  # the worker rode it out
        assert "database_unavailable" not in {row["error"]["code"] for row in job["results"] if row["error"]}
    finally:
        postgres.remove()


def test_without_a_database_url_results_go_to_sqlite(tmp_path, service_settings, data_root,
                                                     spawn_worker_with, make_api):
    settings = service_settings.replace(database_url=f"sqlite:///{tmp_path / 'posterq.sqlite3'}")
    spawn_worker_with("sqlite@test", settings, concurrency=2)
    api = make_api(settings)
    folder = data_root / "sqlite-folder"
    write_posters(folder, 50)
    directory = api.post("/jobs", json={"directory": str(folder)}).json()["id"]
    uploads = api.post("/jobs", files=_uploads(10)).json()["id"]
    for job_id, total in ((directory, 50), (uploads, 10)):
        job = wait_for_job(api.url, job_id, timeout=120)
        assert_exactly_once(job, all_results(api.url, job_id, total), total)
    assert (tmp_path / "posterq.sqlite3").stat().st_size > 0


def test_a_finished_job_writes_its_output_file_under_an_output_root(tmp_path, service_settings, data_root,
                                                                   spawn_worker_with, make_api):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    settings = service_settings.replace(output_roots=(outputs,))
    spawn_worker_with("outputs@test", settings)
    api = make_api(settings)
    folder = data_root / "with-output"
    write_posters(folder, 30)
    target = outputs / "genres.csv"
    target.write_text("an older result\n")
    # Replacing a file is asked for (tests/service/test_outputs.py: without it, the file stays).
    response = api.post("/jobs", json={"directory": str(folder), "output": str(target), "overwrite": True})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    job = wait_for_job(api.url, job_id, timeout=120)
    assert is_final(job) and job["done"] == 30
    download = api.get(f"/jobs/{job_id}/results", params={"format": "csv"}).content
    wait_for_job(api.url, job_id, until=lambda _: target.read_bytes() != b"an older result\n", timeout=60)
    # The file is the download, whole: written under another name, then renamed over the old one.
    assert target.read_bytes() == download
    shown = wait_for_job(api.url, job_id, until=lambda job: job["output_status"] == "written", timeout=60)
    assert (shown["output"], shown["output_error"]) == (str(target), None)
    assert len(list(csv.DictReader(io.StringIO(download.decode())))) == 30
    assert sorted(path.name for path in outputs.iterdir()) == ["genres.csv"]  # no partial file left


@pytest.mark.parametrize(("output", "status", "code"), [
    ("{outside}/genres.csv", 403, "path_outside_roots"),
    ("{outputs}/genres.txt", 400, "bad_output"),
    ("{outputs}/missing-folder/genres.csv", 400, "bad_output"),
    ("", 400, "bad_output"),
])
def test_an_output_path_is_checked_before_the_job_is_taken(tmp_path, service_settings, data_root, make_api,
                                                           output, status, code):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    api = make_api(service_settings.replace(output_roots=(outputs,)))
    folder = data_root / "checked-output"
    write_posters(folder, 1)
    path = output.format(outside=tmp_path, outputs=outputs)
    response = api.post("/jobs", json={"directory": str(folder), "output": path})
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text


def test_output_files_need_an_output_root(api, data_root, tmp_path):
    folder = data_root / "no-output-root"
    write_posters(folder, 1)
    response = api.post("/jobs", json={"directory": str(folder), "output": str(tmp_path / "x.csv")})
    assert (response.status_code, response.json()["error"]["code"]) == (403, "no_output_roots")


def test_two_services_on_one_database_never_expire_or_replay_each_others_jobs(
        service_settings, spawn_worker_with, make_api):
    # One database, two services (key prefixes): "short" keeps finished jobs for 1 s and sweeps
    # every 0.2 s; "long" keeps them for the suite's 600 s.
    long_settings = service_settings
    short_settings = service_settings.replace(key_prefix="pqtest-short", queue="pqtest-short", result_ttl=1,
                                              sweep_interval=0.2)
    long_api, short_api = make_api(long_settings), make_api(short_settings)
    spawn_worker_with("long@test", long_settings)
    spawn_worker_with("short@test", short_settings)
    key = {"Idempotency-Key": "the-same-key"}
    kept = long_api.post("/jobs", files=_uploads(3), headers=key)
    mine = short_api.post("/jobs", files=_uploads(3), headers=key)
    assert kept.status_code == mine.status_code == 202, mine.text
    # The same key (and owner) in the other service is that service's own submission.
    assert mine.json()["id"] != kept.json()["id"] and "Idempotent-Replayed" not in mine.headers
    kept_id, mine_id = kept.json()["id"], mine.json()["id"]
    assert is_final(wait_for_job(long_api.url, kept_id, timeout=120))
    assert is_final(wait_for_job(short_api.url, mine_id, timeout=120))
    # The short service's sweep deletes its own finished job (so it does run its expiry) ...
    _wait_gone(short_api, mine_id)
    # ... and has swept again since, with the other's job long past its 1 s.
    _swept_again(short_api)
    assert long_api.get(f"/jobs/{kept_id}").json()["done"] == 3
    # A job id of the other service names nothing here: no read, no download, no cancel.
    for answer in (short_api.get(f"/jobs/{kept_id}"), short_api.get(f"/jobs/{kept_id}/results"),
                   short_api.delete(f"/jobs/{kept_id}")):
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "job_not_found")
    assert kept_id not in {job["id"] for job in short_api.get("/jobs").json()["jobs"]}
    replayed = long_api.post("/jobs", files=_uploads(3), headers=key)
    assert replayed.json()["id"] == kept_id and replayed.headers["Idempotent-Replayed"] == "true"
    # The short service no longer knows its own expired key, and never answers with the other's job.
    fresh = short_api.post("/jobs", files=_uploads(3), headers=key)
    assert fresh.status_code == 202 and fresh.json()["id"] not in (kept_id, mine_id)


def _swept_again(api) -> None:
    # A job of the short service that finishes after the first expiry is expired in turn: proof
    # that its sweep ran again after the other service's job was past the short TTL.
    job_id = api.post("/jobs", files=_uploads(1)).json()["id"]
    assert is_final(wait_for_job(api.url, job_id, timeout=120))
    _wait_gone(api, job_id)


def _wait_gone(api, job_id: str, timeout: float = 120) -> None:
    # Until the service answers 404 for the job: its sweep expired it.
    deadline = time.monotonic() + timeout
    while api.get(f"/jobs/{job_id}").status_code != 404:
        assert time.monotonic() < deadline, f"job {job_id} was never expired"
        time.sleep(0.1)
