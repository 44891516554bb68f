"""The results database: a PostgreSQL that goes down mid-job loses nothing, SQLite where none is
configured, and output files written beside the folder when a job finishes."""

import csv
import io

import pytest
from samples import poster_bytes, write_posters

from posterq.testing import PostgresServer, all_results, assert_exactly_once, is_final, wait_for_job

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
