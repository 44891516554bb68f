"""The API over real HTTP, with one real worker process: jobs, downloads, limits, health, docs."""

import csv
import io
import json
import time

import pytest
from samples import bad_file_kinds, poster_bytes, write_posters, zip_bytes

from posterq.genres import GENRES


@pytest.fixture(scope="module", autouse=True)
def worker(start_worker):
    """One worker process for the whole module."""
    return start_worker("api-worker@test")


def _files(blobs: dict[str, bytes]):
    return [("files", (name, data, "application/octet-stream")) for name, data in blobs.items()]


def _assert_matches_classifier(results, blobs: dict[str, bytes], classifier):
    expected = dict(zip(blobs, classifier.classify(list(blobs.values())), strict=True))
    assert sorted(row["name"] for row in results) == sorted(blobs)
    for row in results:
        prediction = expected[row["name"]]
        if prediction.error:
            assert row["status"] == "error" and row["error"] == prediction.error.as_dict()
        else:
            assert row["status"] == "ok" and row["error"] is None
            assert row["genres"] == prediction.genres
            assert row["scores"] == pytest.approx(prediction.scores, abs=1e-5)
            assert list(row["scores"]) == list(GENRES)


def test_an_upload_job_end_to_end(api, classifier):
    blobs = {f"poster_{i}.jpg": poster_bytes(i, size=(60 + i, 90)) for i in range(6)}
    response = api.post("/jobs", files=_files(blobs))
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["total"] == 6
    assert response.headers["Location"] == job["url"] and job["url"].endswith(f"/jobs/{job['id']}")
    done = api.wait(job["id"])
    assert (done["status"], done["done"], done["failed"], done["progress"]) == ("done", 6, 0, 1.0)
    assert done["model"]["name"] == "tiny-test" and done["model"]["version"] == "0.0.1"
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]
    assert {row["worker"] for row in done["results"]} == {"api-worker@test"}
    _assert_matches_classifier(done["results"], blobs, classifier)


def test_bad_files_among_good_ones_fail_alone(api, classifier):
    bad = {f"bad_{name}{kind.suffix}": kind.data for name, kind in bad_file_kinds().items()}
    good = {f"good_{i}.png": poster_bytes(i, "PNG") for i in range(3)}
    response = api.post("/jobs", files=_files({**good, **bad}))
    assert response.status_code == 202, response.text
    done = api.wait(response.json()["id"])
    assert (done["status"], done["done"], done["failed"]) == ("done", 3, len(bad))
    codes = {row["name"]: row["error"]["code"] for row in done["results"] if row["error"]}
    assert codes == {f"bad_{name}{kind.suffix}": kind.code for name, kind in bad_file_kinds().items()}
    _assert_matches_classifier(done["results"], {**good, **bad}, classifier)


def test_a_zip_job_and_top_k(api, classifier):
    members = {f"set/poster_{i}.jpg": poster_bytes(10 + i) for i in range(5)}
    members["__MACOSX/set/._poster_0.jpg"] = b"resource fork"
    response = api.post("/jobs", files={"zip": ("posters.zip", zip_bytes(members), "application/zip")},
                        data={"top_k": "1"})
    assert response.status_code == 202, response.text
    assert response.json()["total"] == 5 and response.json()["source"] == "zip"
    done = api.wait(response.json()["id"])
    assert done["done"] == 5 and done["top_k"] == 1
    assert all(len(row["genres"]) == 1 for row in done["results"])
    # A raw zip body works too.
    raw = api.post("/jobs", data=zip_bytes({"a.jpg": poster_bytes(1)}),
                   headers={"Content-Type": "application/zip"})
    assert raw.status_code == 202 and api.wait(raw.json()["id"])["done"] == 1


def test_a_directory_job(api, classifier, data_root):
    folder = data_root / "dir-job"
    write_posters(folder, 3)
    write_posters(folder / "nested", 2, start=3)
    (folder / ".hidden.jpg").write_bytes(poster_bytes(9))
    response = api.post("/jobs", json={"directory": str(folder)})
    assert response.status_code == 202, response.text
    done = api.wait(response.json()["id"])
    names = [row["name"] for row in done["results"]]
    assert names == ["nested/poster_003.png", "nested/poster_004.jpg", "poster_000.jpg",
                     "poster_001.png", "poster_002.jpg"]
    blobs = {row["name"]: (folder / row["name"]).read_bytes() for row in done["results"]}
    _assert_matches_classifier(done["results"], blobs, classifier)
    # The POST answers before the folder is listed; the job counts its posters as they are found.
    flat = api.post("/jobs", json={"directory": str(folder), "recursive": False})
    assert flat.status_code == 202 and flat.json()["enumerated"] is False
    assert api.wait(flat.json()["id"])["total"] == 3


def test_results_download_as_csv_and_jsonl(api):
    blobs = {"a.jpg": poster_bytes(1), "b.txt": b"not a poster", "c.jpg": poster_bytes(2)}
    job_id = api.post("/jobs", files=_files(blobs)).json()["id"]
    api.wait(job_id)
    response = api.get(f"/jobs/{job_id}/results", params={"format": "csv"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == ["path", "genres", "error", "message", "model_version", "reused", *GENRES]
    assert [row["path"] for row in rows] == ["a.jpg", "b.txt", "c.jpg"]
    assert {row["model_version"] for row in rows} == {"0.0.1"}  # the worker's model labelled (or read) each
    assert rows[1]["error"] == "not_an_image" and rows[1]["genres"] == ""
    assert rows[0]["genres"] and float(rows[0]["Drama"]) >= 0
    lines = api.get(f"/jobs/{job_id}/results", params={"format": "jsonl"}).text.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["path"] for r in records] == ["a.jpg", "b.txt", "c.jpg"]
    assert list(records[0]) == ["path", "genres", "error", "model_version", "reused", "scores"]
    assert api.get(f"/jobs/{job_id}/results",
                   params={"format": "xml"}).json()["error"]["code"] == "bad_format"


def test_results_are_paged(api):
    blobs = {f"p{i}.jpg": poster_bytes(i) for i in range(7)}
    job_id = api.post("/jobs", files=_files(blobs)).json()["id"]
    api.wait(job_id)
    page = api.get(f"/jobs/{job_id}", params={"offset": 2, "limit": 3}).json()
    assert [row["index"] for row in page["results"]] == [2, 3, 4] and page["next_offset"] == 5
    last = api.get(f"/jobs/{job_id}", params={"offset": 5, "limit": 3}).json()
    assert [row["name"] for row in last["results"]] == ["p5.jpg", "p6.jpg"] and last["next_offset"] is None
    # limit=0: the status alone, no result read.
    alone = api.get(f"/jobs/{job_id}", params={"limit": 0}).json()
    assert (alone["status"], alone["results"], alone["next_offset"]) == ("done", [], None)
    assert api.get(f"/jobs/{job_id}", params={"limit": -1}).json()["error"]["code"] == "bad_paging"


@pytest.mark.parametrize("request_kwargs, status, code", [
    ({"json": {"directory": "/etc"}}, 403, "path_outside_roots"),
    ({"json": {"directory": 42}}, 400, "bad_directory"),
    ({"json": ["not", "an", "object"]}, 400, "bad_json"),
    ({"data": b"plain text", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
    ({"data": b"PK not really", "headers": {"Content-Type": "application/zip"}}, 400, "bad_zip"),
    ({"files": {"other": ("x.jpg", b"x")}}, 400, "no_posters"),
    ({"files": [("files", ("a.jpg", b"x"))], "data": {"top_k": "0"}}, 400, "bad_top_k"),
    ({"files": [("files", ("a.jpg", b"x"))], "data": {"top_k": "25"}}, 400, "bad_top_k"),
])
def test_bad_submissions_get_json_errors(api, request_kwargs, status, code):
    response = api.post("/jobs", **request_kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]


def test_directory_paths_must_stay_under_the_data_roots(api, data_root, tmp_path):
    escape = str(data_root / ".." / tmp_path.name)
    response = api.post("/jobs", json={"directory": escape})
    assert (response.status_code, response.json()["error"]["code"]) == (403, "path_outside_roots")
    (data_root / "sneaky").unlink(missing_ok=True)
    (data_root / "sneaky").symlink_to(tmp_path)
    response = api.post("/jobs", json={"directory": str(data_root / "sneaky")})
    assert (response.status_code, response.json()["error"]["code"]) == (403, "path_outside_roots")
    response = api.post("/jobs", json={"directory": str(data_root / "missing")})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "directory_not_found")


def test_limits_are_refused_clearly(api, service_settings, data_root):
    too_many = {f"p{i}.jpg": b"x" for i in range(service_settings.max_posters_per_job + 1)}
    response = api.post("/jobs", files=_files(too_many))
    assert (response.status_code, response.json()["error"]["code"]) == (413, "too_many_posters")
    huge = {"big.jpg": b"x" * (service_settings.max_request_bytes + 1)}
    response = api.post("/jobs", files=_files(huge))
    assert (response.status_code, response.json()["error"]["code"]) == (413, "request_too_large")
    folder = data_root / "too-many"
    for i in range(service_settings.max_posters_per_job + 1):
        folder.mkdir(exist_ok=True)
        (folder / f"{i}.jpg").write_bytes(b"x")
    # A directory job has no such limit: only a window of it is in Redis at a time.
    response = api.post("/jobs", json={"directory": str(folder)})
    assert response.status_code == 202, response.text
    limits = api.get("/limits").json()
    assert limits["max_posters_per_job"] == service_settings.max_posters_per_job


def test_an_oversized_poster_fails_alone(api, service_settings):
    blobs = {"big.jpg": b"\xff" * (service_settings.max_file_bytes + 1), "ok.jpg": poster_bytes(1)}
    done = api.wait(api.post("/jobs", files=_files(blobs)).json()["id"])
    assert [row["error"]["code"] if row["error"] else None for row in done["results"]] == ["too_large", None]


@pytest.mark.parametrize("members, code", [
    ({"../escape.jpg": b"x"}, "zip_unsafe_path"),
    ({"/abs/olute.jpg": b"x"}, "zip_unsafe_path"),
    ({"dir\\win.jpg": b"x"}, "zip_unsafe_path"),
    ({"bomb.jpg": b"\x00" * (3 << 20)}, "zip_bomb"),
    ({f"p{i}.jpg": b"x" for i in range(81)}, "too_many_posters"),
])
def test_zip_tricks_are_refused(api, members, code):
    response = api.post("/jobs", files={"zip": ("x.zip", zip_bytes(members))})
    assert response.json()["error"]["code"] == code, response.text


def test_a_zip_that_expands_too_far_is_refused(api, service_settings):
    members = {f"p{i}.jpg": bytes(range(256)) * 4000 for i in range(5)}  # 1 MB each, barely compressible
    response = api.post("/jobs", files={"zip": ("x.zip", zip_bytes(members))})
    assert (response.status_code, response.json()["error"]["code"]) == (413, "zip_too_large")


def test_unknown_jobs_and_methods(api):
    assert api.get("/jobs/nope").json()["error"]["code"] == "job_not_found"
    assert api.delete("/jobs/nope").status_code == 404
    assert api.get("/jobs/nope/results").status_code == 404
    response = api.http.put(api.url + "/jobs")
    assert (response.status_code, response.json()["error"]["code"]) == (405, "method_not_allowed")


def test_health_readiness_and_metrics(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    # The database was just flushed: the worker's next heartbeat (every 0.5 s here) comes back,
    # however late a busy machine runs it.
    deadline = time.monotonic() + 120
    while (ready := api.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ready.status_code == 200 and "api-worker@test" in ready.json()["workers"]
    api.wait(api.post("/jobs", files=_files({"a.jpg": poster_bytes(1), "b.txt": b"no"})).json()["id"])
    text = api.get("/metrics").text
    for line in ('posterq_jobs_submitted_total{source="upload"} 1.0',
                 'posterq_posters_total{outcome="ok"} 1.0',
                 'posterq_posters_total{outcome="not_an_image"} 1.0',
                 'posterq_jobs_finished_total{status="done"} 1.0',
                 "posterq_batch_size_count 1.0", "posterq_queue_posters 0.0", "posterq_workers 1.0",
                 "posterq_sweep_given_back_total 0.0", "posterq_sweep_tokens_total 0.0"):
        assert line in text


def test_the_openapi_document_matches_the_routes(api):
    document = api.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = set()
    for rule in api.app.url_map.iter_rules():
        path = rule.rule.replace("<", "{").replace(">", "}")
        served |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served
    # Relative without POSTERQ_PUBLIC_URL (never from the Host header): see test_limits.py.
    assert document["servers"][0]["url"] == "/"


def test_get_with_wait_answers_once_the_job_is_final(api):
    job = api.post("/jobs", files=_files({"one.jpg": poster_bytes(3)})).json()
    view = api.get(f"/jobs/{job['id']}", params={"wait": 20}).json()
    assert view["status"] == "done" and view["results"][0]["status"] == "ok"


@pytest.mark.parametrize("wait", ["-1", "31", "soon", "nan"])
def test_a_bad_wait_is_refused(api, wait):
    job = api.post("/jobs", files=_files({"one.jpg": poster_bytes(3)})).json()
    response = api.get(f"/jobs/{job['id']}", params={"wait": wait})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_wait"
