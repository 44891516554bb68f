"""Jobs a person can tell apart (issue 25 items 1 and 3), with real processes: a name given at
submit, shown and filtered by the API and `posterq jobs`; the source, folder and output file in
the view; times as RFC 3339; a status-only poll (limit=0); and rows that say their model.

    pytest -m names
"""

import csv
import io
import json
import secrets
import time
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from commands import posterq
from harness import wait_for_job
from samples import poster_bytes, write_posters

from posterq.jobs.database import Database
from posterq.jobs.ledger import Ledger
from posterq.jobs.view_fields import MAX_NAME, shown_folder

pytestmark = pytest.mark.names
VERSION = "0.0.1"  # the tiny test bundle's (tests/service/test_models.py: tiny-test@0.0.1)


def _files(count: int):
    return [("files", (f"p{i}.jpg", poster_bytes(i))) for i in range(count)]


def _zip_of(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(count):
            archive.writestr(f"z{i}.jpg", poster_bytes(i))
    return buffer.getvalue()


def _refused(response, code: str) -> None:
    assert (response.status_code, response.json()["error"]["code"]) == (400, code), response.text


def _moment(text: str) -> float:
    # RFC 3339 in UTC with milliseconds, as the docs show it: 2026-12-07T06:00:00.123Z
    assert len(text) == 24 and text.endswith("Z") and text[10] == "T" and text[19] == ".", text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_name_is_stored_shown_and_found(api, data_root):
    tag = secrets.token_hex(4)  # the API is shared by the session: only this test's jobs match it
    upload = api.post("/jobs", files=_files(1), data={"name": f"catalogue {tag} 100%"}).json()
    folder = data_root / f"names-{tag}"
    write_posters(folder, 2)
    listed = api.post("/jobs", json={"directory": str(folder), "name": f"  folder {tag}  "}).json()
    plain = api.post("/jobs", files=_files(1)).json()
    zipped = api.post(f"/jobs?name=zip+{tag}", data=_zip_of(1), headers={"Content-Type": "application/zip"})
    assert zipped.status_code == 202, zipped.text
    # No worker in this test: every job stays queued, and is shown as made.
    assert (upload["name"], upload["source"], upload["folder"]) == (f"catalogue {tag} 100%", "upload", None)
    # The folder below its data root: the server's absolute paths are not shown.
    assert (listed["name"], listed["source"], listed["folder"]) == (f"folder {tag}", "directory", folder.name)
    assert str(data_root) not in str(listed)
    assert plain["name"] is None and zipped.json()["name"] == f"zip {tag}"

    shown = api.get(f"/jobs/{listed['id']}").json()
    assert (shown["name"], shown["folder"], shown["output"]) == (f"folder {tag}", folder.name, None)

    def named(text: str) -> list[str]:
        answer = api.get("/jobs", params={"name": text})
        assert answer.status_code == 200, answer.text
        return [job["id"] for job in answer.json()["jobs"]]

    # A substring, case-sensitive, newest first; % and _ are plain characters, not wildcards.
    assert named(tag) == [zipped.json()["id"], listed["id"], upload["id"]]
    assert named(f"folder {tag}") == [listed["id"]]
    assert named(f"FOLDER {tag}") == []
    assert named(f"{tag} 100%") == [upload["id"]] and named(f"{tag} 1_0%") == []
    assert [job["name"] for job in api.get("/jobs", params={"name": tag}).json()["jobs"]] == [
        f"zip {tag}", f"folder {tag}", f"catalogue {tag} 100%"]
    assert api.get("/jobs", params={"name": tag, "status": "done"}).json()["jobs"] == []


def test_a_bad_name_is_refused_with_400_bad_name(api):
    before = api.get("/jobs", params={"limit": 1000}).json()["jobs"]
    _refused(api.post("/jobs", files=_files(1), data={"name": "x" * (MAX_NAME + 1)}), "bad_name")
    _refused(api.post("/jobs", files=_files(1), data={"name": "two\nlines"}), "bad_name")
    _refused(api.post("/jobs", json={"directory": "/nowhere", "name": 7}), "bad_name")
    _refused(api.get("/jobs", params={"name": "a\x00b"}), "bad_name")
    assert api.get("/jobs", params={"limit": 1000}).json()["jobs"] == before  # nothing was made
    longest = api.post("/jobs", files=_files(1), data={"name": "é" * MAX_NAME})
    assert longest.status_code == 202 and longest.json()["name"] == "é" * MAX_NAME


def test_times_are_rfc3339_and_limit_0_is_the_status_alone(api, start_worker):
    start_worker("names@test")
    job = api.post("/jobs", files=_files(3)).json()
    assert job["claimed"] is job["finished"] is None
    assert _moment(job["created"]) == pytest.approx(job["created_at"], abs=0.001)
    done = api.wait(job["id"])
    for field in ("created", "claimed", "started", "finished"):
        assert _moment(done[field]) == pytest.approx(done[f"{field}_at"], abs=0.001), field
    # The job names its model by name and version only: the genres are GET /limits' (once).
    assert done["model"] == {"name": "tiny-test", "version": VERSION}
    assert len(api.get("/limits").json()["genres"]) == 24

    status = api.get(f"/jobs/{job['id']}", params={"limit": 0})
    assert status.status_code == 200, status.text
    alone = status.json()
    assert (alone["status"], alone["done"], alone["results"], alone["next_offset"]) == ("done", 3, [], None)
    _refused(api.get(f"/jobs/{job['id']}", params={"limit": -1}), "bad_paging")
    # Each result, and each downloaded row, says the model that labelled it.
    assert {row["model_version"] for row in done["results"]} == {VERSION}
    rows = list(csv.DictReader(io.StringIO(api.get(f"/jobs/{job['id']}/results").text)))
    assert list(rows[0])[:6] == ["path", "genres", "error", "message", "model_version", "reused"]
    assert [row["model_version"] for row in rows] == [VERSION] * 3
    lines = api.get(f"/jobs/{job['id']}/results", params={"format": "jsonl"}).text.splitlines()
    assert [list(json.loads(line)) for line in lines] == [["path", "genres", "error", "model_version",
                                                           "reused", "scores"]] * 3
    assert {json.loads(line)["model_version"] for line in lines} == {VERSION}


def test_posterq_submit_name_and_jobs_list_show_it(api, start_worker, tmp_path):
    start_worker("names@test")
    tag = secrets.token_hex(4)
    folder = tmp_path / "posters"
    write_posters(folder, 3)
    (folder / "notes.txt").write_bytes(b"not a poster\n")
    out = tmp_path / "genres.csv"
    submitted = posterq("submit", str(folder), "--api", api.url, "--out", str(out), "--no-progress",
                        "--name", f"run {tag}")
    assert submitted.returncode == 0, submitted.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0])[4] == "model_version" and len(rows) == 4
    # A row a model labelled, or failed to read, says which; none is labelled without one.
    assert {row["model_version"] for row in rows} == {VERSION}

    base = ("--api", api.url)
    listed = posterq("jobs", "list", *base, "--name", tag)
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    job_id = line.split()[0]
    assert "4/4 posters, 1 failed  upload  " in line and line.endswith(f"  run {tag}"), line
    shown = posterq("jobs", "show", job_id, *base)
    assert shown.returncode == 0 and shown.stdout.startswith(f"{job_id}  done"), shown.stderr
    assert shown.stdout.rstrip().endswith(f"  run {tag}")
    assert posterq("jobs", "list", *base, "--name", f"RUN {tag}").stdout == ""

    fetched = tmp_path / "fetched.jsonl"
    assert posterq("jobs", "download", job_id, *base, "--out", str(fetched)).returncode == 0
    assert {json.loads(line)["model_version"] for line in fetched.read_text().splitlines()} == {VERSION}


def test_a_directory_job_shows_its_folder_and_output_and_its_file_says_the_model(
        service_settings, make_api, spawn_worker_with, data_root, tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    # A service of its own: the module's worker (no output roots) must not take its output's task.
    settings = service_settings.replace(output_roots=(outputs.resolve(),), key_prefix="pqtest-names",
                                        queue="pqtest-names")
    api = make_api(settings)
    spawn_worker_with("names-outputs@test", settings)
    folder = data_root / f"names-out-{secrets.token_hex(4)}"
    write_posters(folder, 4)
    target = outputs.resolve() / "catalogue.csv"
    job = api.post("/jobs", json={"directory": str(folder), "output": str(target), "name": "nightly"}).json()
    done = wait_for_job(api.url, job["id"], http=api.http, timeout=120,
                        until=lambda seen: seen["output_status"] in ("written", "failed"))
    assert (done["name"], done["folder"], done["output"], done["output_status"]) == (
        "nightly", folder.name, str(target), "written"), done["output_error"]
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [row["model_version"] for row in rows] == [VERSION] * 4
    listed = posterq("jobs", "list", "--api", api.url, "--name", "nightly")
    assert listed.returncode == 0, listed.stderr
    assert f"  {folder.name}  " in listed.stdout and f"  nightly  output written: {target}" in listed.stdout
    # The page's dashboard shows the same name and folder.
    [row] = [row for row in api.get("/dashboard").json()["jobs"] if row["id"] == job["id"]]
    assert (row["name"], row["source"], row["folder"], row["output"]) == ("nightly", "directory", folder.name,
                                                                         str(target))


def test_the_name_filter_reads_the_same_in_sqlite(tmp_path):
    # `make serve` without a database URL runs on SQLite: its filter is the same substring test.
    ledger = Ledger(Database(f"sqlite:///{tmp_path / 'jobs.sqlite3'}"))
    ledger.db.migrate()
    for i, name in enumerate(["cat 100%", "c_t", None]):
        job_id = f"{i:032x}"
        ledger.create({"id": job_id, "source": "upload", "lane": "bulk", "tenant": job_id, "enumerated": True,
                       "created_at": time.time() + i, "name": name}, [])
        ledger.mark_submitted(job_id)

    def named(text: str) -> list[str]:
        return [job["name"] for job in ledger.page(None, None, 0, 10, text)]

    assert named("c") == ["c_t", "cat 100%"] and named("C") == []
    assert named("_") == ["c_t"] and named("%") == ["cat 100%"]
    assert len(ledger.page(None, None, 0, 10)) == 3


def test_a_folder_is_shown_below_its_innermost_data_root():
    roots = (Path("/srv/posters"), Path("/srv/posters/team-a"), Path("/data"))
    assert shown_folder("/srv/posters/2024/may", roots) == "2024/may"
    assert shown_folder("/srv/posters/team-a/x", roots) == "x"
    assert shown_folder("/data", roots) == "."
    assert shown_folder("/srv/postersX/y", roots) is shown_folder("/elsewhere", roots) is None
