"""Results reused by content (posterq.jobs.reuse) over real HTTP, Redis, PostgreSQL and workers.

A poster whose bytes the job's model classified before gets the stored result, marked reused, and
no worker classifies it: the workers here hold their batches at a closed gate (posterq.gate) for
the runs that must reuse everything, so a batch that ran would leave its `.reached` mark, and a
job that needed one would never finish.
"""

import csv
import io
import uuid

from harness import eventually
from samples import poster_bytes, write_posters

from posterq import gate

VERSION, NEW = "0.0.1", "0.0.2"


def _folder(data_root, count: int):
    folder = data_root / f"reuse-{uuid.uuid4().hex[:8]}"
    write_posters(folder, count)
    return folder


def _run(api, folder, **body) -> dict:
    response = api.post("/jobs", json={"directory": str(folder), **body})
    assert response.status_code == 202, response.text
    done = api.wait(response.json()["id"])
    assert done["status"] == "done", done
    return done


def _by_name(job: dict) -> dict[str, dict]:
    return {row["name"]: row for row in job["results"]}


def _genres(job: dict) -> dict[str, list]:
    return {row["name"]: row["genres"] for row in job["results"]}


def _closed(gates) -> None:
    (gates / gate.BATCH).touch()


def _opened(gates) -> None:
    (gates / gate.BATCH).unlink(missing_ok=True)


def test_a_folder_labelled_again_reuses_every_result_and_classifies_nothing(api, gated_worker, data_root):
    worker, gates = gated_worker("reuse@test")
    _opened(gates)
    folder = _folder(data_root, 6)
    first = _run(api, folder)
    assert [row["reused"] for row in first["results"]] == [False] * 6
    _closed(gates)  # from now on a batch would wait here, and the job with it
    second = _run(api, folder)
    assert (second["done"], second["failed"], second["reuse"]) == (6, 0, True)
    assert [row["reused"] for row in second["results"]] == [True] * 6
    assert _genres(second) == _genres(first)
    assert {row["model_version"] for row in second["results"]} == {VERSION}
    assert not (gates / f"{gate.BATCH}.reached").exists(), "a batch ran for posters that were reused"
    # The downloads say it too, in a column of their own.
    rows = list(csv.DictReader(io.StringIO(api.get(f"/jobs/{second['id']}/results").text)))
    assert [row["reused"] for row in rows] == ["true"] * 6
    jsonl = api.get(f"/jobs/{second['id']}/results", params={"format": "jsonl"}).text.splitlines()
    assert all('"reused": true' in line for line in jsonl)


def test_a_changed_file_and_a_new_one_are_classified_the_rest_reused(api, gated_worker, data_root):
    worker, gates = gated_worker("changed@test")
    _opened(gates)
    folder = _folder(data_root, 4)
    first = _run(api, folder)
    (folder / "poster_001.png").write_bytes(poster_bytes(50, "PNG"))  # same name, new bytes
    (folder / "poster_new.jpg").write_bytes(poster_bytes(51))
    second = _run(api, folder)
    reused = {name: row["reused"] for name, row in _by_name(second).items()}
    assert reused == {"poster_000.jpg": True, "poster_001.png": False, "poster_002.jpg": True,
                      "poster_003.png": True, "poster_new.jpg": False}
    assert _by_name(second)["poster_000.jpg"]["genres"] == _by_name(first)["poster_000.jpg"]["genres"]


def test_the_same_poster_twice_in_a_job_is_classified_once(api, gated_worker, data_root):
    worker, gates = gated_worker("twins@test")
    folder = data_root / f"twins-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (folder / name).write_bytes(poster_bytes(7))
    (folder / "d.jpg").write_bytes(poster_bytes(8))
    job = api.post("/jobs", json={"directory": str(folder)}).json()
    # The gate holds the batch once it has claimed its posters: the twins were never queued.
    worker.wait_until(lambda: (gates / f"{gate.BATCH}.reached").exists(), "the first batch")
    _opened(gates)
    done = api.wait(job["id"])
    rows = _by_name(done)
    names = ("a.jpg", "b.jpg", "c.jpg", "d.jpg")
    assert [rows[name]["reused"] for name in names] == [False, True, True, False]
    assert rows["a.jpg"]["genres"] == rows["b.jpg"]["genres"] == rows["c.jpg"]["genres"]
    assert rows["a.jpg"]["scores"] == rows["c.jpg"]["scores"]
    assert (done["done"], done["failed"]) == (4, 0)


def test_an_upload_reuses_and_classifies_its_twins_once(api, gated_worker):
    worker, gates = gated_worker("upload@test")
    _opened(gates)
    files = [("files", (f"p{i}.jpg", poster_bytes(i))) for i in range(3)]
    first = api.wait(api.post("/jobs", files=files).json()["id"])
    assert [row["reused"] for row in first["results"]] == [False] * 3
    _closed(gates)
    twice = files + [("files", ("again.jpg", poster_bytes(1)))]
    accepted = api.post("/jobs", files=twice)
    assert accepted.status_code == 202, accepted.text
    # Every poster was classified before: the job is done as it is accepted.
    assert (accepted.json()["status"], accepted.json()["done"]) == ("done", 4)
    second = api.wait(accepted.json()["id"])
    assert [row["reused"] for row in second["results"]] == [True] * 4
    assert _genres(second) == {**_genres(first), "again.jpg": _genres(first)["p1.jpg"]}
    assert not (gates / f"{gate.BATCH}.reached").exists()
    # Two copies of a new poster in one upload: one is classified, the other gets its result.
    new = [("files", ("x.jpg", poster_bytes(20))), ("files", ("y.jpg", poster_bytes(20)))]
    job = api.post("/jobs", files=new).json()
    worker.wait_until(lambda: (gates / f"{gate.BATCH}.reached").exists(), "the batch of x.jpg")
    _opened(gates)
    done = api.wait(job["id"])
    assert [row["reused"] for row in done["results"]] == [False, True]
    assert done["results"][0]["genres"] == done["results"][1]["genres"]


def test_reuse_false_and_a_service_without_reuse_classify_again(api, make_api, service_settings, spawn_worker,
                                                                data_root):
    spawn_worker("again@test")
    folder = _folder(data_root, 3)
    _run(api, folder)
    again = _run(api, folder, reuse=False)
    assert again["reuse"] is False
    assert [row["reused"] for row in again["results"]] == [False] * 3
    refused = api.post("/jobs", json={"directory": str(folder), "reuse": "maybe"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_reuse"
    files = [("files", (f"p{i}.jpg", poster_bytes(i))) for i in range(2)]
    api.wait(api.post("/jobs", files=files).json()["id"])
    form = api.wait(api.post("/jobs", files=files, data={"reuse": "false"}).json()["id"])
    assert [row["reused"] for row in form["results"]] == [False] * 2
    # A service that reuses nothing (POSTERQ_REUSE_RESULTS=0) says so in each job.
    plain = make_api(service_settings.replace(reuse_results=False))
    job = plain.post("/jobs", files=files).json()
    assert job["reuse"] is False
    assert [row["reused"] for row in plain.wait(job["id"])["results"]] == [False] * 2


def test_workers_without_reuse_list_folders_without_it(api, spawn_worker_with, service_settings, data_root):
    # The API takes the job as reusing; the workers that list its folder are set not to reuse.
    spawn_worker_with("noreuse@test", service_settings.replace(reuse_results=False))
    folder = _folder(data_root, 3)
    _run(api, folder)
    again = _run(api, folder)
    assert [row["reused"] for row in again["results"]] == [False] * 3


def test_another_model_never_reuses_a_result(api, store, spawn_worker_with, service_settings, new_bundle,
                                             data_root):
    old = spawn_worker_with("old@test", service_settings)
    folder = _folder(data_root, 4)
    _run(api, folder)
    # A rolling upgrade: two versions serve the default pool, so which one a poster gets is not
    # known at intake, and nothing is reused.
    spawn_worker_with("new@test", service_settings.replace(model=str(new_bundle)))
    during = _run(api, folder)
    assert [row["reused"] for row in during["results"]] == [False] * 4
    old.stop()
    eventually(lambda: "old@test" not in store.stats.workers(), "end of the old worker's heartbeat")
    after = _run(api, folder)
    # Only the new version serves now: it reuses what it classified itself, never the old one's.
    for row in after["results"]:
        classified_by = _by_name(during)[row["name"]]["model_version"]
        assert row["reused"] == (classified_by == NEW), (row, classified_by)
        assert row["model_version"] == NEW
    # A job naming the version reuses its results too.
    named = api.post("/jobs", json={"directory": str(folder), "model": f"tiny-test@{NEW}"}).json()
    rows = api.wait(named["id"])["results"]
    assert [(row["reused"], row["model_version"]) for row in rows] == [(True, NEW)] * 4


def test_the_lookup_matches_bytes_model_and_top_k_and_reads_one_row_a_poster(store):
    from posterq.jobs.reuse import Identity

    ledger, reuse = store.ledger, store.jobs.reuse
    for job_id, top_k in (("a" * 32, 0), ("b" * 32, 0), ("c" * 32, 2)):
        ledger.create({"id": job_id, "source": "upload", "lane": "bulk", "tenant": "t", "top_k": top_k,
                       "enumerated": True, "created_at": 0.0, "owner": ""}, [{"name": "x"}, {"name": "y"}])
        ledger.write([(job_id, i, {"genres": ["Drama"], "scores": {"Drama": 0.9}, "sha256": "same"}, "ok")
                      for i in range(2)], {"name": "m", "version": "1", "sha256": "file"}, 0.0)
    found, _ = reuse.lookup(Identity("m", "1", "file"), None, {"same", "unknown"})
    assert found == {"same": {"genres": ["Drama"], "scores": {"Drama": 0.9}, "worker": None}}
    assert reuse.lookup(Identity("m", "1", "file"), 2, {"same"})[0].keys() == {"same"}
    assert reuse.lookup(Identity("m", "1", "file"), 1, {"same"})[0] == {}  # no job at that top_k
    assert reuse.lookup(Identity("m", "2", "file"), None, {"same"})[0] == {}  # another version
    assert reuse.lookup(Identity("m", "1", "other"), None, {"same"})[0] == {}  # another model file
    plan = reuse.plan(["same", "new", "new", None], Identity("m", "1", "file"), None)
    assert (sorted(plan.reused), plan.twins, plan.queued()) == ([0], {2: 1}, [1, 3])
