"""Admission that no key can get around (issue 23, item 3), and incident 2 replayed, with real workers,
real Redis, real PostgreSQL and real HTTP.

Incident 2, scaled down: the service there had a global limit of 10,000 posters and key A sent 30
folders of 5,000 files (150,000 posters, 15 times the limit); here the global limit is 60, shared by
three keys (A, B and the operator's: a part of 20 each), and key A sends 8 folders of 30 files (240
posters, 4 times the limit, each folder more than A's whole part): 1/625 of the posters. Key B sent
200 jobs naming made-up models; here it sends 5.

    pytest -m admission tests/service
"""

import threading
import time

import pytest
from commands import posterq
from harness import assert_exactly_once
from prometheus_client.parser import text_string_to_metric_families
from samples import poster_bytes, write_posters

from posterq.exceptions import QueueFull
from posterq.jobs.keys import Keys
from posterq.jobs.pools import pool_settings
from posterq.jobs.records import FINISHED_TTL
from posterq.jobs.store import JobStore

pytestmark = pytest.mark.admission

KEY_A = "alpha-admission-key-0123456789"
KEY_B = "bravo-admission-key-0123456789"
OPERATOR = "operator-admission-key-0123456"
LISTED = "tiny-test@9.9.9"  # listed by the operator, held by no worker
GLOBAL_LIMIT, KEY_PART = 60, 20  # 60 // 3 keys


def _bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _files(count: int, start: int = 0) -> list:
    return [("files", (f"p{i}.jpg", poster_bytes(i), "image/jpeg")) for i in range(start, start + count)]


def _gauges(api, name: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(api.get("/metrics", headers=_bearer(OPERATOR)).text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _wait(api, key: str, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/jobs/{job_id}", headers=_bearer(key), params={"wait": 5}).json()
        if job["status"] in ("done", "failed", "cancelled") or time.monotonic() > deadline:
            return job


def _all_results(api, key: str, job_id: str, total: int) -> list[dict]:
    return api.get(f"/jobs/{job_id}", headers=_bearer(key), params={"limit": max(total, 1)}).json()["results"]


@pytest.fixture
def admission_settings(service_settings):
    """Two keys and an operator's; the operator's counts as a key, so each key's part is 60 // 3."""
    return service_settings.replace(api_keys=f"{KEY_A} {KEY_B}", operator_keys=OPERATOR,
                                    max_queued_posters=GLOBAL_LIMIT, analysis_timeout=120,
                                    models=LISTED)


def test_key_part_is_its_share_of_the_global_limit(admission_settings):
    from posterq.jobs.admission import key_limit

    # Three keys (A, B, the operator's) share 60: 20 each, under the per-key setting of 5,000.
    assert key_limit(admission_settings, 3) == KEY_PART
    assert key_limit(admission_settings.replace(max_queued_posters_per_key=7), 3) == 7


def test_incident_2_a_flood_of_folders_locks_nobody_out(make_api, admission_settings, spawn_worker_with,
                                                       data_root, store):
    api = make_api(admission_settings)
    folders = []
    for n in range(8):
        folder = data_root / f"flood-{n}"
        write_posters(folder, 30, start=n * 30)
        folders.append(folder)
    spawn_worker_with("flood@test", admission_settings, concurrency=2)

    samples, stop = [], threading.Event()

    def sample():
        # The admitted count (the ledger's) and what waits in Redis, every few milliseconds.
        while not stop.is_set():
            mine, everyone = store.ledger.queued(_digest(KEY_A))
            samples.append((mine, everyone, store.fair_queue.depth()))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        answers = [api.post("/jobs", json={"directory": str(folder)}, headers=_bearer(KEY_A))
                   for folder in folders]
        accepted = [answer.json()["id"] for answer in answers if answer.status_code == 202]
        for answer in answers:
            assert answer.status_code in (202, 429), answer.text
            if answer.status_code == 429:
                # A's own limit, in A's own words, with a Retry-After.
                assert answer.json()["error"]["code"] == "key_queue_full" and answer.headers["Retry-After"]
        assert accepted
        # Key B, while A's folders are listed and run: never refused because of A.
        for n in range(3):
            b_job = api.post("/jobs", files=_files(2, start=100 + n), headers=_bearer(KEY_B))
            assert b_job.status_code == 202, b_job.text
            analysis = api.post("/analysis/", data=poster_bytes(200 + n),
                                headers={**_bearer(KEY_B), "Content-Type": "application/octet-stream"})
            assert analysis.status_code == 200, analysis.text
            assert _wait(api, KEY_B, b_job.json()["id"])["status"] == "done"
        # Every job of A's that was accepted finishes, each file of its folder once.
        for job_id in accepted:
            job = _wait(api, KEY_A, job_id)
            assert job["status"] == "done" and job["total"] == 30, job
            assert_exactly_once(job, _all_results(api, KEY_A, job_id, 30), 30)
    finally:
        stop.set()
        sampler.join(timeout=10)
    assert samples
    assert max(everyone for _, everyone, _ in samples) <= admission_settings.max_queued_posters, samples
    assert max(waiting for _, _, waiting in samples) <= admission_settings.max_queued_posters
    # A's folders held 8 x 30 posters, A's part is 20: each folder accepted is more than the part,
    # so its listing reached the part and paused there (the bound above was met, not idle), and A
    # never had more than its part queued.
    assert store.stats.read().get("listings_paused", 0) >= 1
    assert max(mine for mine, _, _ in samples) <= KEY_PART, samples


def _digest(key: str) -> str:
    from posterq.api.auth import digest

    return digest(key)


def _pool_keys(store: JobStore, pool: str) -> dict[str, int]:
    """Every Redis key of a pool (its prefix's, its Celery queue and binding), with its TTL."""
    settings = pool_settings(store.settings, pool)
    names = [*store.client.scan_iter(match=f"{Keys(settings.key_prefix).prefix}:*"),
             *store.client.scan_iter(match=f"*{settings.queue}*")]
    return {name.decode(): store.client.ttl(name) for name in names}


def test_made_up_models_are_refused_and_a_listed_one_waits_in_view(make_api, admission_settings, store):
    api = make_api(admission_settings)
    for n in range(5):
        made_up = f"made-up-{n}@1.0"
        refused = api.post("/jobs", files=_files(4), data={"model": made_up, "wait_for_model": "true"},
                           headers=_bearer(KEY_B))
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "unknown_model" and made_up in error["message"]
        assert _pool_keys(store, made_up) == {}
    assert api.get("/jobs", headers=_bearer(KEY_B)).json()["jobs"] == []
    assert not list(store.client.scan_iter(match=f"{store.keys.prefix}:model:*"))

    # A model the operator listed: accepted, and it shows that it waits for a worker.
    before = _pool_keys(store, LISTED)
    assert before == {}
    waiting = api.post("/jobs", files=_files(6), data={"model": LISTED, "wait_for_model": "true"},
                       headers=_bearer(KEY_B))
    assert waiting.status_code == 202, waiting.text
    job_id = waiting.json()["id"]
    assert waiting.json()["waiting_for_model"] is True
    view = api.get(f"/jobs/{job_id}", headers=_bearer(KEY_B)).json()
    assert view["waiting_for_model"] is True and view["status"] == "queued"
    assert view["requested_model"] == LISTED
    assert api.get("/jobs", headers=_bearer(KEY_B)).json()["jobs"][0]["waiting_for_model"] is True
    assert _gauges(api, "posterq_model_queued_posters") == {(("model", LISTED),): 6.0}
    assert _gauges(api, "posterq_queued_posters") == {(): 6.0}
    listed = posterq("jobs", "list", "--api", api.url, "--api-key", KEY_B)
    assert listed.returncode == 0 and f"waiting for model {LISTED}" in listed.stdout, listed
    shown = posterq("jobs", "show", job_id, "--api", api.url, "--api-key", KEY_B)
    assert shown.returncode == 0 and f"waiting for model {LISTED}" in shown.stdout, shown
    # Its posters count against B's part like any other: 6 + 15 would pass 20.
    over = api.post("/jobs", files=_files(15), headers=_bearer(KEY_B))
    assert over.status_code == 429 and over.json()["error"]["code"] == "key_queue_full", over.text
    assert _pool_keys(store, LISTED)  # the pool exists while the job waits

    cancelled = api.delete(f"/jobs/{job_id}", headers=_bearer(KEY_B)).json()
    assert cancelled["status"] == "cancelled" and cancelled["waiting_for_model"] is False
    # Nothing of the pool stays but what expires: the job's hash and done list (long-polls read
    # them for a while after the job ends).
    left = _pool_keys(store, LISTED)
    assert all(0 < ttl <= FINISHED_TTL for ttl in left.values()), sorted(left.items())
    assert _gauges(api, "posterq_model_queued_posters") == {}


def test_a_pool_keeps_no_key_once_its_last_job_is_done(make_api, admission_settings, spawn_worker_with,
                                                       copy_bundle, store):
    from samples import rewrite_meta

    bundle = copy_bundle("tiny-9.9.9")
    rewrite_meta(bundle, version="9.9.9")
    api = make_api(admission_settings)
    job = api.post("/jobs", files=_files(5), data={"model": LISTED, "wait_for_model": "true"},
                   headers=_bearer(KEY_A))
    assert job.status_code == 202, job.text
    worker = spawn_worker_with("pool@test", admission_settings.replace(model=str(bundle)))
    done = _wait(api, KEY_A, job.json()["id"])
    assert done["status"] == "done" and done["waiting_for_model"] is False
    worker.stop()
    left = _pool_keys(store, LISTED)
    assert all(0 < ttl <= FINISHED_TTL for ttl in left.values()), sorted(left.items())


def test_a_listing_pauses_at_its_keys_part_and_resumes_from_its_cursor(store, data_root):
    from posterq.jobs.admission import Quota
    from posterq.worker.enumeration import enumerate_folder

    folder = data_root / "paused"
    write_posters(folder, 30)
    owner = _digest(KEY_A)
    job = store.jobs.create_directory(str(folder), True, owner=owner, quota=Quota(owner, 12, 1000))
    sent = []
    first = enumerate_folder(store, job["id"], sent.append)
    # 12 admitted, in order, and the listing paused there: the cursor is the 12th file.
    assert (first.found, first.paused, first.finished) == (12, True, False)
    assert store.stats.read()["listings_paused"] == 1
    assert store.ledger.queued(owner)[0] == 12
    assert store.ledger.get(job["id"])["enum_cursor"] == "poster_011.png"
    # No room, no listing: a second run admits nothing and pauses again.
    again = enumerate_folder(store, job["id"], sent.append)
    assert (again.found, again.paused) == (0, True)
    # Another job of the same key, without a folder listed yet, is refused at submit.
    with pytest.raises(QueueFull) as refused:
        store.jobs.create_directory(str(folder), True, owner=owner, quota=Quota(owner, 12, 1000))
    assert refused.value.code == "key_queue_full"
    # Results free room: the listing goes on from its cursor, each file once.
    batch = store.claims.claim("drain", 5, 0)[0]
    store.ledger.write([(job_id, index, {"genres": [], "scores": {}}, "ok") for job_id, index in batch],
                       {"version": "test"}, time.time())
    resumed = enumerate_folder(store, job["id"], sent.append)
    assert (resumed.found, resumed.paused) == (5, True)
    assert store.ledger.queued(owner)[0] == 12
    names = [row["name"] for row in store.ledger.results(job["id"])]
    assert names == [f"poster_{i:03d}.{'jpg' if i % 2 == 0 else 'png'}" for i in range(17)]


def test_a_keys_retry_after_counts_its_share_of_the_workers(make_api, admission_settings, store):
    from posterq.api.backpressure import drain_seconds
    from posterq.jobs.stats import BATCH_SECONDS, BATCH_SIZE

    api = make_api(admission_settings)
    assert api.post("/jobs", files=_files(KEY_PART), headers=_bearer(KEY_A)).status_code == 202
    assert api.post("/jobs", files=_files(1), headers=_bearer(KEY_B)).status_code == 202
    # One poster takes 10 s on the one live process, and two keys wait: A's next poster has room
    # once one of A's has run, which takes two posters' time, A's and B's, turn about.
    store.stats.observe_many([(BATCH_SIZE, 1), (BATCH_SECONDS, 10.0)])
    store.stats.heartbeat("slow@test", {"processes": 1})
    refused = api.post("/jobs", files=_files(1), headers=_bearer(KEY_A))
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "key_queue_full", refused.text
    assert refused.headers["Retry-After"] == str(drain_seconds(store, 2)) == "20"
    # B, with room of its own, is not refused meanwhile.
    assert api.post("/jobs", files=_files(3), headers=_bearer(KEY_B)).status_code == 202


def test_a_job_over_its_keys_part_is_too_large_and_limits_say_so(make_api, admission_settings):
    # A 429 would send a client back for ever: a job that could never fit its key's part is a 413,
    # and GET /limits gives that part, so posterq submit splits a folder to fit it.
    api = make_api(admission_settings)
    limits = api.get("/limits", headers=_bearer(KEY_A)).json()
    assert limits["max_posters_per_job"] == KEY_PART < admission_settings.max_posters_per_job
    refused = api.post("/jobs", files=_files(KEY_PART + 1), headers=_bearer(KEY_A))
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "too_many_posters", refused.text
    assert api.get("/jobs", headers=_bearer(KEY_A)).json()["jobs"] == []
    assert api.post("/jobs", files=_files(KEY_PART), headers=_bearer(KEY_A)).status_code == 202
