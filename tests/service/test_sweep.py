"""posterq.worker.sweep against real Redis: lost batches come back, lost tokens are sent again, poison fails.

The tokens the sweep sends are collected instead of published: what is under test is which
posters the sweep makes ready and how many tokens it asks for; the end-to-end path through a
real broker is tests/service/test_redis_restart.py.
"""

import time

import pytest
from samples import poster_bytes

from posterq.jobs.keys import ref
from posterq.jobs.store import JobStore
from posterq.worker.sweep import sweep

pytestmark = pytest.mark.redis_restart


def _job(store, count):
    items = [{"name": f"p{i}.jpg", "kind": "upload"} for i in range(count)]
    return store.jobs.create("upload", items, [poster_bytes(i) for i in range(count)])


def _sweeper(store):
    sent = []
    return sent, lambda: sweep(store, sent.append, lambda: 0)


def test_ready_posters_without_a_token_get_tokens_and_one_sweeper_runs_at_a_time(service_settings,
                                                                                 clean_redis):
    # An hour's sweep interval: the sweeper's lock cannot lapse between the two runs on any machine.
    store = JobStore.from_settings(service_settings.replace(sweep_interval=3600))
    _job(store, 5)  # written by the store alone: no token was ever sent
    sent, run = _sweeper(store)
    report = run()
    assert report.tokens == 2 and sent == [2]  # ceil(5 / batch size 4)
    assert run().tokens == 0 and sent == [2]  # the lock holds for one sweep interval


def test_a_batch_whose_task_is_gone_goes_back_to_the_head_of_the_ready_list(service_settings, clean_redis):
    store = JobStore.from_settings(service_settings.replace(batch_time_limit=0.01, sweep_interval=0.01))
    job = _job(store, 6)
    claimed = store.claims.claim("lost-task", 4, 0)[0]
    assert len(claimed) == 4 and store.fair_queue.depth() == 2
    time.sleep(0.1)  # older than the time limit plus two sweeps: its task is gone
    sent, run = _sweeper(store)
    report = run()
    assert report.given_back == 4 and sent and sent[0] >= 1
    assert store.stats.read()["sweep_given_back"] == 4  # /metrics: posterq_sweep_given_back_total
    ready = store.client.lrange(store.keys.ready(job["id"]), 0, -1)
    assert [value.decode() for value in ready] == [ref(job["id"], i) for i in range(6)]
    assert store.claims.claimed("lost-task") == [] and store.claims.stale(0) == []


def test_a_batch_that_is_alive_is_left_alone(store):
    _job(store, 3)
    store.claims.claim("live-task", 4, 0)
    assert store.claims.give_back("live-task", older_than=60) is None
    assert len(store.claims.claimed("live-task")) == 3


def test_posters_given_back_too_often_fail_instead_of_killing_more_workers(service_settings, clean_redis):
    store = JobStore.from_settings(service_settings.replace(batch_time_limit=0.01, sweep_interval=0.01))
    job = _job(store, 2)
    for attempt in range(store.settings.max_redeliveries + 1):
        store.claims.claim(f"doomed-{attempt}", 4, 0)
        store.claims.give_back(f"doomed-{attempt}", older_than=0)
    poisoned = f"doomed-{store.settings.max_redeliveries}"  # kept there, for the sweep to fail
    assert len(store.claims.claimed(poisoned)) == 2 and store.fair_queue.depth() == 0
    report = _sweeper(store)[1]()
    assert report.failed == 2 and store.claims.claimed(poisoned) == [] and store.claims.stale(0) == []
    final = store.jobs.get(job["id"])
    assert final["status"] == "failed" and final["failed"] == 2
    assert {row["error"]["code"] for row in store.jobs.results(job["id"])} == {"redelivered_too_often"}
    assert store.client.hlen(store.keys.attempts) == 0
