"""Folder listings on a queue of their own: a small directory job is listed, and done, while a big
one's batch tokens still wait, with a real worker of one process whose batch a test gate holds.

The order is read from events (the gate, the order in which results were written), never from a time limit.
"""

import pytest
from samples import poster_bytes

from posterq import gate
from posterq.jobs.broker import Broker, ListingFirstCycle, listing_queue

pytestmark = pytest.mark.big_jobs


def _folder(root, name: str, count: int):
    folder = root / name
    folder.mkdir()
    for i in range(count):
        (folder / f"poster_{i:03d}.jpg").write_bytes(poster_bytes(i))
    return folder


def _written_before(database, job_id: str, other_id: str) -> int:
    # How many of a job's results were written before the other job's first one (one worker process
    # writes them all, one batch after another: an order of events, read from its clock).
    with database.transaction() as tx:
        (count,) = tx.execute(
            "SELECT count(*) FROM posterq_results WHERE job_id = %s AND status <> 'pending' "
            "AND finished_at < (SELECT min(finished_at) FROM posterq_results WHERE job_id = %s)",
            (job_id, other_id)).fetchone()
    return count


def test_a_small_folder_is_listed_and_done_before_a_big_jobs_waiting_batches(
        api, gated_worker, service_settings, data_root, database):
    big = _folder(data_root, "big", 3 * service_settings.job_window)
    small = _folder(data_root, "small", 2)
    worker, gates = gated_worker("lane@test")
    big_id = api.post("/jobs", json={"directory": str(big)}).json()["id"]
    # The worker's only process holds the big job's first batch; its other tokens wait in the queue.
    worker.wait_until(lambda: (gates / f"{gate.BATCH}.reached").exists(), "the big job's first batch", 120)
    posted = api.post("/jobs", json={"directory": str(small)})
    assert posted.status_code == 202, posted.text
    small_id = posted.json()["id"]
    broker = Broker.from_settings(service_settings)
    worker.wait_until(lambda: broker.queued() > 0, "the big job's waiting tokens", 120)
    waiting = broker.queued()
    queued = api.get(f"/jobs/{small_id}").json()
    assert (queued["status"], queued["total"]) == ("queued", 0), queued  # not listed yet: no process free

    (gates / gate.BATCH).unlink()
    done = api.wait(small_id, timeout=120)
    assert done["status"] == "done" and done["total"] == 2 and done["done"] == 2, done
    # Listed after the batch that was running, not after the tokens that waited behind it: of the
    # big job's batches, at most one more ran before the small job's (the fair queue may pick it).
    assert waiting > 2
    assert _written_before(database, big_id, small_id) <= 2 * service_settings.batch_size
    assert api.wait(big_id, timeout=180)["status"] == "done"


def test_a_model_pools_folder_is_listed_on_its_own_listing_queue(api, spawn_worker, data_root, store):
    from posterq.jobs.pools import pool_settings

    spawn_worker("pool-lane@test")
    model = api.get("/models").json()["models"][0]["model"]
    folder = _folder(data_root, "pool", 5)
    posted = api.post("/jobs", json={"directory": str(folder), "model": model})
    assert posted.status_code == 202, posted.text
    done = api.wait(posted.json()["id"], timeout=120)
    assert (done["status"], done["total"], done["done"]) == ("done", 5, 5), done
    # The pool's last job ended: its listing queue went with its batch queue.
    queue = pool_settings(store.settings, model).queue
    assert not store.client.exists(queue, listing_queue(queue))


def test_the_listing_queue_is_apart_from_every_batch_queue(service_settings):
    from posterq.jobs.pools import pool_settings

    queues = {pool_settings(service_settings, pool).queue for pool in ("", "listing", "a@1", "a@1-listing")}
    assert not queues & {listing_queue(queue) for queue in queues}


def test_workers_read_listing_queues_first_and_batch_queues_in_turn():
    cycle = ListingFirstCycle()
    cycle.update(["q", "q.m@1", listing_queue("q"), "q.m", listing_queue("q.m@1")])
    assert cycle.consume(5) == [listing_queue("q"), listing_queue("q.m@1"), "q", "q.m@1", "q.m"]
    cycle.rotate("q")  # kombu moves the queue it took a message from to the end
    cycle.rotate(listing_queue("q"))
    assert cycle.consume(5) == [listing_queue("q.m@1"), listing_queue("q"), "q.m@1", "q.m", "q"]
