"""The page's dashboard in a real browser (Debian's Chromium, Playwright) against the API over HTTP, real
Redis and real worker processes: a folder job the page did not upload appears, opens in the grid and
downloads; a queued job is cancelled from its row; the operators' section shows a live worker, the
queue, and the posters per second plotted. Every wait is one of Playwright's auto-waiting expectations.
"""

import secrets
from pathlib import Path

import pytest
from playwright.sync_api import expect
from samples import bad_file_kinds, poster_bytes, write_posters

from .browsing import open_page

WORKER = "dash-page@test"


@pytest.fixture
def browsing(browser, api):
    """A fresh tab on the page of the test API."""
    tab = open_page(browser, api.url)
    yield tab
    tab.page.context.close()


def _row(page, job_id: str):
    return page.locator(f"#jobs tr[data-id='{job_id}']")


def test_a_folder_job_appears_opens_in_the_grid_and_its_worker_shows(browsing, api, spawn_worker, data_root):
    spawn_worker(WORKER)
    folder = data_root / "dashboard-page"
    write_posters(folder, 5)
    (folder / "zz-broken.jpg").write_bytes(bad_file_kinds()["truncated_jpeg"].data)
    job_id = api.post("/jobs", json={"directory": str(folder)}).json()["id"]
    job = api.wait(job_id)
    assert (job["status"], job["failed"]) == ("done", 1)
    results = api.get(f"/jobs/{job_id}", params={"limit": 1000}).json()["results"]
    page = browsing.page

    # The job was never uploaded by this page, yet its row is there, done, with its model and rate.
    row = _row(page, job_id)
    expect(row).to_have_attribute("data-status", "done")
    expect(row.locator(".status")).to_have_text("done")
    expect(row).to_contain_text("directory")
    expect(row).to_contain_text("tiny-test@0.0.1")
    expect(row).to_contain_text("6 of 6, 1 failed")
    expect(row.locator(".job-cancel")).to_have_count(0)  # final: nothing to cancel
    expect(row.get_by_role("button", name="Retry the failed posters of")).to_be_visible()
    expect(row.locator("progress")).to_have_attribute("value", "1")

    # Opened, its results fill the grid: every poster with the genres the API gives it.
    row.locator(".job-open").click()
    expect(page.locator("#results-title")).to_contain_text("done, 6 of 6 posters")
    expect(page.locator("#results")).to_have_attribute("data-jobs", job_id)
    expect(page.locator("#grid .card")).to_have_count(6)
    cards = browsing.cards()
    assert [(card["name"], card["state"], card["chips"], card["code"]) for card in cards] \
        == [(result["name"], result["status"], result["genres"], (result["error"] or {}).get("code"))
            for result in results]
    assert cards[-1]["code"] == "truncated"
    with page.expect_download() as download:
        page.click("#download-csv")
    assert Path(download.value.path()).read_bytes() \
        == api.get(f"/jobs/{job_id}/results", params={"format": "csv"}).content

    # The operators' section: the live worker with its rate over the last minute, and the hour's plot.
    worker = page.locator(f"#workers tr[data-hostname='{WORKER}']")
    expect(worker).to_contain_text("tiny-test@0.0.1")
    expect(worker.locator("td.number").first).not_to_have_text("0.0/s")
    expect(page.locator("#plot rect.plot-bar")).not_to_have_count(0)
    expect(page.locator("#plot-summary")).to_contain_text("Posters per second")
    assert browsing.problems == []


def test_a_queued_job_is_cancelled_from_its_row(browsing, api):
    # No worker runs in this test: the job stays queued until the page cancels it.
    files = [("files", (f"poster_{i}.jpg", poster_bytes(i))) for i in range(3)]
    job_id = api.post("/jobs", files=files).json()["id"]
    page = browsing.page
    row = _row(page, job_id)
    expect(row).to_have_attribute("data-status", "queued")
    expect(row).to_contain_text("0 of 3")
    expect(page.locator("#workers-none")).to_be_visible()
    expect(page.locator("#waiting tr[data-pool='']")).to_contain_text("3")
    row.get_by_role("button", name="Cancel").click()
    expect(row).to_have_attribute("data-status", "cancelled")
    expect(row.locator(".job-cancel")).to_have_count(0)
    assert api.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
    expect(page.locator("#waiting tr[data-pool='']")).to_have_count(0)
    assert page.is_hidden("#alert")
    assert browsing.problems == []


def test_an_opened_job_fills_in_as_a_worker_labels_it(browsing, api, spawn_worker):
    files = [("files", (f"poster_{i}.jpg", poster_bytes(i))) for i in range(4)]
    job_id = api.post("/jobs", files=files).json()["id"]
    page = browsing.page
    _row(page, job_id).locator(".job-open").click()
    # No worker yet: every card waits for one.
    expect(page.locator("#results-title")).to_contain_text("queued, 0 of 4 posters")
    expect(page.locator("#grid .card[data-state=pending]")).to_have_count(4)
    spawn_worker(WORKER)
    expect(page.locator("#grid .card[data-state=ok]")).to_have_count(4)
    expect(page.locator("#results-title")).to_contain_text("done, 4 of 4 posters")
    results = api.get(f"/jobs/{job_id}").json()["results"]
    assert [card["chips"] for card in browsing.cards()] == [result["genres"] for result in results]
    assert browsing.problems == []


def test_older_jobs_come_on_request(browsing, api):
    files = [("files", ("poster.jpg", poster_bytes(0)))]
    ids = [api.post("/jobs", files=files).json()["id"] for _ in range(21)]
    page = browsing.page
    # The newest 20 first; the oldest on request.
    expect(page.locator("#jobs tr")).to_have_count(20)
    expect(_row(page, ids[0])).to_have_count(0)
    page.get_by_role("button", name="Show older jobs").click()
    expect(page.locator("#jobs tr")).to_have_count(21)
    expect(_row(page, ids[0])).to_be_visible()
    expect(page.locator("#jobs-more")).to_be_hidden()
    assert browsing.problems == []


def test_with_api_keys_a_key_sees_its_own_jobs_only(browser, make_api, service_settings):
    key_a, key_b = ("alpha-" + secrets.token_urlsafe(24)), ("bravo-" + secrets.token_urlsafe(24))
    keyed = make_api(service_settings.replace(api_keys=f"{key_a}, {key_b}"))
    files = [("files", ("poster.jpg", poster_bytes(0)))]
    mine = keyed.post("/jobs", files=files, headers={"Authorization": f"Bearer {key_a}"}).json()["id"]
    theirs = keyed.post("/jobs", files=files, headers={"Authorization": f"Bearer {key_b}"}).json()["id"]
    tab = open_page(browser, keyed.url, wait_for_limits=False)
    try:
        page = tab.page
        expect(page.locator("#jobs-state")).to_contain_text("API key")
        page.fill("#api-key", key_a)
        page.click("#key-use")
        expect(_row(page, mine)).to_be_visible()
        expect(page.locator("#jobs tr")).to_have_count(1)
        expect(_row(page, theirs)).to_have_count(0)
        # The workers and the queue are every key's: an operator's figures, not this key's.
        expect(page.locator("#operators")).to_be_hidden()
        assert [problem for problem in tab.problems if "401" not in problem] == []
    finally:
        page.context.close()


def test_retry_failed_makes_a_job_of_the_failed_posters(browsing, api, spawn_worker, data_root):
    spawn_worker(WORKER)
    folder = data_root / f"dashboard-retry-{secrets.token_hex(4)}"
    write_posters(folder, 2)
    (folder / "broken.jpg").write_bytes(b"not a poster")
    job_id = api.post("/jobs", json={"directory": str(folder)}).json()["id"]
    assert api.wait(job_id)["failed"] == 1
    (folder / "broken.jpg").write_bytes(poster_bytes(5))  # mended before the retry
    # An upload's bytes are gone once labelled: its failed poster offers no retry.
    upload = api.post("/jobs", files=[("files", ("bad.jpg", b"not a poster"))]).json()["id"]
    assert api.wait(upload)["failed"] == 1
    page = browsing.page
    expect(_row(page, upload)).to_have_attribute("data-status", "failed")
    expect(_row(page, upload).locator(".job-retry")).to_have_count(0)
    row = _row(page, job_id)
    expect(row).to_have_attribute("data-status", "done")
    row.get_by_role("button", name="Retry the failed posters of").click()
    # The new job (the failed poster alone) appears above the one it retries, and is labelled.
    expect(page.locator("#jobs tr")).to_have_count(3)
    new = next(job for job in api.get("/jobs").json()["jobs"] if job["retry_of"] == job_id)
    expect(_row(page, new["id"])).to_have_attribute("data-status", "done")
    expect(_row(page, new["id"])).to_contain_text("1 of 1")
    assert api.wait(new["id"])["results"][0]["name"] == "broken.jpg"
    assert page.is_hidden("#alert")
    assert browsing.problems == []
