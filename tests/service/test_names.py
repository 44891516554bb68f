"""Names as given (issue 25): a worker's bare --hostname, and POSTERQ_API read by `posterq submit`."""

import os

from commands import posterq
from samples import poster_bytes, write_posters


def test_a_bare_hostname_shows_as_given_not_as_celerys_node_name(api, spawn_worker):
    # wait_ready waits for a heartbeat under exactly this name.
    spawn_worker("bare-1")
    job = api.wait(api.post("/jobs", files=[("files", ("a.jpg", poster_bytes(1)))]).json()["id"])
    assert [row["worker"] for row in job["results"]] == ["bare-1"]
    assert api.get("/readyz").json()["workers"] == ["bare-1"]
    workers = api.get("/dashboard").json()["operators"]["workers"]
    assert [worker["hostname"] for worker in workers] == ["bare-1"]


def test_a_name_at_host_is_kept_whole(api, spawn_worker):
    spawn_worker("celery@kept")
    job = api.wait(api.post("/jobs", files=[("files", ("a.jpg", poster_bytes(2)))]).json()["id"])
    assert [row["worker"] for row in job["results"]] == ["celery@kept"]


def test_posterq_submit_reads_posterq_api(api, spawn_worker, tmp_path):
    spawn_worker("env-api@test")
    write_posters(tmp_path / "posters", 2)
    out = tmp_path / "genres.csv"
    done = posterq("submit", str(tmp_path / "posters"), "--out", str(out), "--no-progress",
                   env={**os.environ, "POSTERQ_API": api.url})
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 3
