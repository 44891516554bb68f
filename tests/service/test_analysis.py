"""POST /analysis/, the original project's endpoint, through the real queue and a real worker."""

import base64
import time

import pytest
from samples import bad_file_kinds, poster_bytes

from posterq.genres import GENRES


@pytest.fixture(scope="module", autouse=True)
def worker(start_worker):
    """One worker process for the module."""
    return start_worker("analysis-worker@test")


def test_get_gives_the_original_hint(api):
    response = api.get("/analysis/")
    assert response.status_code == 200 and response.json() == {"result": "Send post request"}


def test_base64_text_gets_the_genres_the_classifier_gives(api, classifier):
    data = poster_bytes(7)
    expected = classifier.classify([data])[0]
    response = api.post("/analysis/", data=base64.b64encode(data), headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] == expected.genres
    assert set(body["scores"]) == set(GENRES)
    assert body["scores"] == pytest.approx(expected.scores, abs=1e-5)
    ranked = [body["scores"][genre] for genre in body["result"]]
    assert ranked == sorted(ranked, reverse=True)  # genres best first
    assert body["model"]["name"] == "tiny-test"
    job = api.get(f"/jobs/{body['job']}").json()
    assert (job["status"], job["source"], job["total"]) == ("done", "analysis", 1)
    assert job["created_at"] <= job["claimed_at"] <= job["finished_at"]


@pytest.mark.parametrize("form", ["data-url", "url-safe-lines", "raw", "multipart", "form-encoded"])
def test_every_body_form_gives_the_same_answer(api, classifier, form):
    data = poster_bytes(8)
    expected = classifier.classify([data])[0].genres
    text = base64.b64encode(data)
    requests_by_form = {
        "data-url": dict(data=b"data:image/jpeg;base64," + text),
        "url-safe-lines": dict(data=b"\n".join(base64.urlsafe_b64encode(data)[i:i + 76]
                                               for i in range(0, len(text), 76)).rstrip(b"=")),
        "raw": dict(data=data, headers={"Content-Type": "image/jpeg"}),
        "multipart": dict(files={"file": ("heat.jpg", data)}),
        # What a browser's fetch() of a plain string sends without a content type of its own.
        "form-encoded": dict(data=text, headers={"Content-Type": "application/x-www-form-urlencoded"}),
    }
    response = api.post("/analysis/", **requests_by_form[form])
    assert response.status_code == 200, response.text
    assert response.json()["result"] == expected


def test_top_k_limits_the_genres(api):
    response = api.post("/analysis/?top_k=1", data=base64.b64encode(poster_bytes(9)))
    assert response.status_code == 200 and len(response.json()["result"]) == 1
    assert api.post("/analysis/?top_k=99", data=base64.b64encode(poster_bytes(9))).status_code == 400


@pytest.mark.parametrize("body, code", [
    (b"", "no_image"),
    (b"this is not an image at all", "not_an_image"),
    (base64.b64encode(b"plain text, base64-encoded"), "not_an_image"),
    (bad_file_kinds()["empty"].data, "no_image"),
])
def test_garbage_is_a_400_with_a_json_error(api, body, code, store):
    response = api.post("/analysis/", data=body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    # Refused by the API, not after a trip through the queue: nothing was written.
    assert list(store.client.scan_iter(match=store.keys.job("*"))) == []


def test_every_bad_file_kind_is_a_4xx_never_a_500(api):
    for name, bad in bad_file_kinds().items():
        response = api.post("/analysis/", files={"file": (f"{name}{bad.suffix}", bad.data)})
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        assert response.json()["error"]["code"], name


def test_multipart_without_a_file_and_oversized_posters_are_refused(api, service_settings):
    response = api.post("/analysis/", files={"other": ("x.jpg", poster_bytes(1))})
    assert response.status_code == 400 and response.json()["error"]["code"] == "no_image"
    big = b"\xff\xd8" + b"\0" * service_settings.max_file_bytes
    response = api.post("/analysis/", data=big, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_no_worker_in_time_is_a_504_and_the_job_is_cancelled(make_api, service_settings, store):
    # A queue and key prefix no worker reads: the poster is accepted but never classified.
    lonely = service_settings.replace(queue="pqtest-nobody", key_prefix="pqtest-nobody", analysis_timeout=1)
    api = make_api(lonely)
    started = time.monotonic()
    response = api.post("/analysis/", data=base64.b64encode(poster_bytes(2)))
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    # The API's own timeout (a client's would raise, not answer 504 timeout), waited out in full.
    assert time.monotonic() - started >= 1
    jobs = [key for key in store.client.scan_iter(match="pqtest-nobody:job:*") if key.count(b":") == 2]
    assert len(jobs) == 1 and store.client.hget(jobs[0], "status") == b"cancelled"
