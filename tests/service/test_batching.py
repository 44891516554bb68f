"""posterq.worker.batching as plain functions, in this process, against real Redis and the tiny model."""

import pytest
from samples import bad_file_kinds, poster_bytes

from posterq.exceptions import BundleError
from posterq.jobs.keys import Lane
from posterq.worker.batching import run_batch


def _upload_job(store, blobs, top_k=None):
    items = [{"name": f"p{i}", "kind": "upload"} for i in range(len(blobs))]
    return store.jobs.create("upload", items, blobs, top_k)


def test_a_batch_gives_what_the_classifier_gives(store, classifier):
    blobs = [poster_bytes(seed) for seed in range(3)] + [bad_file_kinds()["text"].data]
    job = _upload_job(store, blobs)
    report = run_batch(store, lambda: classifier, "t1", "here@test")
    assert report.written == 4 and report.finished_jobs == (job["id"],)
    expected = classifier.classify(blobs)
    for row, prediction in zip(store.jobs.results(job["id"]), expected, strict=True):
        assert row["worker"] == "here@test"
        if prediction.error:
            assert row["error"] == prediction.error.as_dict() and row["genres"] == []
        else:
            assert row["genres"] == prediction.genres
            assert row["scores"] == pytest.approx(prediction.scores, abs=1e-5)
    assert store.jobs.get(job["id"])["model"]["name"] == "tiny-test"


def test_small_jobs_that_arrive_together_share_one_batch(store, classifier):
    first = _upload_job(store, [poster_bytes(1)])
    second = _upload_job(store, [poster_bytes(2), poster_bytes(3)], top_k=1)
    report = run_batch(store, lambda: classifier, "t1", "here@test")
    assert report.written == 3 and set(report.finished_jobs) == {first["id"], second["id"]}
    assert all(len(row["genres"]) == 1 for row in store.jobs.results(second["id"]))
    # The second job's own token finds nothing left to do.
    assert run_batch(store, lambda: classifier, "t2", "here@test").claimed == 0


def test_a_batch_holding_a_one_poster_call_stays_small_and_owes_the_bulk_a_token(store, classifier):
    settings = store.settings
    assert settings.invoke_size < settings.batch_size
    _upload_job(store, [poster_bytes(seed) for seed in range(2 * settings.batch_size)])
    call = store.jobs.create("upload", [{"name": "one", "kind": "upload"}], [poster_bytes(99)],
                             lane=Lane.INTERACTIVE)
    sent = []
    report = run_batch(store, lambda: classifier, "t1", "here@test", sent.append)
    # The call goes first and waits for an invoke of invoke_size, not of a bulk batch.
    assert report.claimed == settings.invoke_size and call["id"] in report.finished_jobs
    assert sent == [1]  # the bulk job's tokens were counted on full batches
    sent.clear()
    assert run_batch(store, lambda: classifier, "t2", "here@test", sent.append).claimed == settings.batch_size
    assert sent == []


def test_a_one_poster_call_joins_a_running_bulk_batch_between_its_invokes(store, classifier):
    settings = store.settings
    bulk = _upload_job(store, [poster_bytes(seed) for seed in range(settings.batch_size)])
    calls, seen = [], []

    def classifier_during_a_call():
        # The call arrives while the batch's first invoke runs; at the next one, has it been written?
        if not calls:
            calls.append(store.jobs.create("upload", [{"name": "one", "kind": "upload"}], [poster_bytes(99)],
                                           lane=Lane.INTERACTIVE)["id"])
        else:
            seen.append(store.jobs.get(calls[0])["status"])
        return classifier

    report = run_batch(store, classifier_during_a_call, "t1", "here@test")
    assert report.claimed == report.written == settings.batch_size + 1
    assert set(report.finished_jobs) == {bulk["id"], calls[0]}
    # Classified right after the invoke it arrived in (not yet done then), and written before the
    # invoke of the bulk batch's rest.
    assert len(seen) == 2 and seen[0] != "done" and seen[1] == "done", seen
    assert store.jobs.results(calls[0])[0]["worker"] == "here@test"


def test_a_redelivered_batch_writes_each_poster_as_soon_as_it_is_classified(store, classifier):
    # A batch that died may hold a poster that kills its worker: on its next delivery every poster
    # is classified alone and written at once, so that the others do not share that poster's fate.
    size = store.settings.batch_size
    job = _upload_job(store, [poster_bytes(seed) for seed in range(size)])
    store.claims.claim("t1", size, 0)  # a first delivery, which died
    done = []

    def counting():
        done.append(store.jobs.get(job["id"])["done"])
        return classifier

    report = run_batch(store, counting, "t1", "here@test")
    assert report.delivery == 2 and report.written == size and report.finished_jobs == (job["id"],)
    assert done == list(range(size))


def test_a_batch_delivered_too_often_fails_its_posters(store, classifier):
    job = _upload_job(store, [poster_bytes(1), poster_bytes(2)])
    store.claims.claim("t1", 4, 0)  # the first delivery claimed them, then its worker died...
    for _ in range(store.settings.max_redeliveries):
        store.claims.claim("t1", 4, 0)  # ...and so did every later one
    report = run_batch(store, lambda: classifier, "t1", "here@test")
    assert report.delivery == store.settings.max_redeliveries + 2
    view = store.jobs.get(job["id"])
    assert (view["status"], view["failed"]) == ("failed", 2)
    assert {row["error"]["code"] for row in store.jobs.results(job["id"])} == {"redelivered_too_often"}
    assert store.stats.read()["redeliveries"] >= 1


def test_a_redelivered_batch_does_not_count_twice(store, classifier):
    job = _upload_job(store, [poster_bytes(1), poster_bytes(2)])
    store.claims.claim("t1", 4, 0)  # a delivery that died after claiming
    run_batch(store, lambda: classifier, "t1", "here@test")
    store.claims.claim("t1", 4, 0)  # pretend the task arrived once more after finishing
    run_batch(store, lambda: classifier, "t1", "there@test")
    view = store.jobs.get(job["id"])
    assert (view["done"], view["failed"]) == (2, 0)


def test_paths_are_read_under_the_data_roots_only(store, classifier, data_root, tmp_path):
    (data_root / "batching").mkdir(exist_ok=True)
    inside = data_root / "batching" / "ok.jpg"
    inside.write_bytes(poster_bytes(4))
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(poster_bytes(5))
    link = data_root / "batching" / "link.jpg"
    link.unlink(missing_ok=True)
    link.symlink_to(outside)
    items = [{"name": p.name, "kind": "path", "path": str(p)}
             for p in (inside, link, data_root / "batching" / "gone.jpg")]
    job = store.jobs.create("directory", items, [None] * 3)
    run_batch(store, lambda: classifier, "t1", "here@test")
    rows = store.jobs.results(job["id"])
    assert rows[0]["error"] is None
    assert rows[1]["error"]["code"] == "path_outside_roots"
    assert rows[2]["error"]["code"] == "unreadable"


def test_a_model_that_cannot_load_fails_posters_with_its_reason(store):
    job = _upload_job(store, [poster_bytes(1)])

    def broken():
        raise BundleError("no bundle here")

    run_batch(store, broken, "t1", "here@test")
    error = store.jobs.results(job["id"])[0]["error"]
    assert error["code"] == "bad_bundle" and "no bundle here" not in error["message"]  # no host paths
