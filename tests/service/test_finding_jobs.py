"""Jobs a person can find again: GET /jobs, `posterq jobs`, the ids `posterq submit` prints and
what it leaves on Ctrl-C, and Idempotency-Key: a retry of a submission gets the one job, even when
the API was killed in the middle of it."""

import threading
import time

import pytest
import requests
from commands import interrupt, interrupt_when, posterq, running
from harness import all_results, assert_exactly_once, wait_for_job
from samples import poster_bytes, write_posters

from posterq.jobs.keys import JobStatus

pytestmark = pytest.mark.finding
KEY_A, KEY_B = "alpha-finding-key", "bravo-finding-key"


def _files(count: int, start: int = 0):
    return [("files", (f"p{i}.jpg", poster_bytes(i))) for i in range(start, start + count)]


def _bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_jobs_are_listed_newest_first_paged_and_by_status(api):
    ids = [api.post("/jobs", files=_files(1, start=n)).json()["id"] for n in range(3)]
    api.delete(f"/jobs/{ids[1]}")  # no worker: the others stay queued
    page = api.get("/jobs", params={"limit": 2}).json()
    assert [job["id"] for job in page["jobs"]] == [ids[2], ids[1]] and page["next_offset"] == 2
    rest = api.get("/jobs", params={"limit": 2, "offset": 2}).json()
    assert [job["id"] for job in rest["jobs"]] == [ids[0]] and rest["next_offset"] is None
    assert rest["jobs"][0]["url"] == f"/jobs/{ids[0]}"
    cancelled = api.get("/jobs", params={"status": "cancelled"}).json()["jobs"]
    assert [job["id"] for job in cancelled] == [ids[1]]
    bad = api.get("/jobs", params={"status": "finished"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "bad_status")


def test_with_api_keys_a_key_lists_only_its_own_jobs(make_api, service_settings):
    keyed = make_api(service_settings.replace(api_keys=f"{KEY_A}, {KEY_B}"))
    mine = keyed.post("/jobs", files=_files(1), headers=_bearer(KEY_A)).json()["id"]
    keyed.post("/jobs", files=_files(1), headers=_bearer(KEY_B))
    listed = keyed.get("/jobs", headers=_bearer(KEY_A)).json()["jobs"]
    assert [job["id"] for job in listed] == [mine]
    assert keyed.get("/jobs").status_code == 401


def test_an_idempotency_key_gives_the_one_job(make_api, service_settings):
    keyed = make_api(service_settings.replace(api_keys=f"{KEY_A}, {KEY_B}"))
    first = keyed.post("/jobs", files=_files(2), headers={**_bearer(KEY_A), "Idempotency-Key": "chunk-1"})
    again = keyed.post("/jobs", files=_files(2), headers={**_bearer(KEY_A), "Idempotency-Key": "chunk-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    # The same key from another API key is that key's own submission.
    theirs = keyed.post("/jobs", files=_files(2), headers={**_bearer(KEY_B), "Idempotency-Key": "chunk-1"})
    assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"]
    assert len(keyed.get("/jobs", headers=_bearer(KEY_A)).json()["jobs"]) == 1
    for bad in ("", "has space", "x" * 256):
        refused = keyed.post("/jobs", files=_files(1), headers={**_bearer(KEY_A), "Idempotency-Key": bad})
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, "bad_idempotency_key")


def test_an_idempotency_key_sent_with_another_request_answers_422_and_makes_nothing(api, data_root):
    first = api.post("/jobs", files=_files(3), headers={"Idempotency-Key": "chunk-7"})
    assert first.status_code == 202, first.text
    # 7 files instead of 3 under the same key: another request, not a retry (draft-ietf-httpapi-
    # idempotency-key-header), so neither the first job nor a new one.
    more = api.post("/jobs", files=_files(7), headers={"Idempotency-Key": "chunk-7"})
    assert (more.status_code, more.json()["error"]["code"]) == (422, "idempotency_key_reused"), more.text
    assert first.json()["id"] in more.json()["error"]["message"]
    # The same names with other bytes are another request too.
    other_bytes = api.post("/jobs", files=_files(3, start=100), headers={"Idempotency-Key": "chunk-7"})
    assert other_bytes.status_code == 422
    folder = data_root / "idempotent-folder"
    write_posters(folder, 2)
    directory = api.post("/jobs", json={"directory": str(folder)}, headers={"Idempotency-Key": "chunk-7"})
    assert (directory.status_code, directory.json()["error"]["code"]) == (422, "idempotency_key_reused")
    # The same request again still replays the first job.
    again = api.post("/jobs", files=_files(3), headers={"Idempotency-Key": "chunk-7"})
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert [job["id"] for job in api.get("/jobs").json()["jobs"]] == [first.json()["id"]]
    # A directory job's retry replays too, its JSON keys in any order; another folder is refused.
    body = {"directory": str(folder), "recursive": True}
    made = api.post("/jobs", json=body, headers={"Idempotency-Key": "folder-1"})
    reordered = api.post("/jobs", data='{"recursive": true, "directory": "%s"}' % folder,
                         headers={"Idempotency-Key": "folder-1", "Content-Type": "application/json"})
    assert made.status_code == reordered.status_code == 202, reordered.text
    assert reordered.json()["id"] == made.json()["id"] and reordered.headers["Idempotent-Replayed"] == "true"
    elsewhere = api.post("/jobs", json={"directory": str(folder), "recursive": False},
                         headers={"Idempotency-Key": "folder-1"})
    assert (elsewhere.status_code, elsewhere.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert len(api.get("/jobs").json()["jobs"]) == 2


@pytest.mark.parametrize("when", ["job written", "job submitted"])
def test_a_retry_after_the_api_was_killed_mid_submission_gets_the_one_job(
        when, service_settings, serve_api, spawn_worker, database):
    spawn_worker(f"idempotent-{when.split()[1]}@test")
    api = serve_api(service_settings)
    files, key = _files(40), f"killed-{when.split()[1]}"
    watcher = threading.Thread(target=_kill_when, args=(api, database, key, when == "job submitted"))
    watcher.start()
    try:
        requests.post(f"{api.url}/jobs", files=files, headers={"Idempotency-Key": key}, timeout=60)
    except requests.RequestException:
        pass  # the API died under the request: no answer, no id
    watcher.join(timeout=60)
    api = serve_api(service_settings)
    # What `posterq submit` does: the same request, with the same key, until it is answered.
    deadline, answer = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        answer = requests.post(f"{api.url}/jobs", files=files, headers={"Idempotency-Key": key}, timeout=60)
        if answer.status_code != 409:
            break
        time.sleep(float(answer.headers["Retry-After"]))
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    job = wait_for_job(api.url, job_id, timeout=120)
    assert_exactly_once(job, all_results(api.url, job_id, 40), 40)
    # One job in all: a cut-off first try was removed, a completed one answered again.
    assert [listed["id"] for listed in requests.get(f"{api.url}/jobs", timeout=30).json()["jobs"]] == [job_id]


def _kill_when(api, database, key: str, submitted: bool) -> None:
    # SIGKILL the API the moment its job's row is in the database (or marked submitted): before it
    # has answered the client.
    deadline = time.monotonic() + 60
    column = "submitted" if submitted else "TRUE"
    while time.monotonic() < deadline:
        with database.transaction() as tx:
            query = f"SELECT 1 FROM posterq_jobs WHERE idempotency_key = %s AND {column}"
            if tx.execute(query, (key,)).fetchone():
                break
        time.sleep(0.002)
    api.kill()


def test_posterq_jobs_lists_shows_waits_downloads_and_cancels(api, spawn_worker, tmp_path):
    done = api.post("/jobs", files=_files(3)).json()["id"]
    spawn_worker("cli-jobs@test")
    base = ["--api", api.url]
    waited = posterq("jobs", "wait", done, *base)
    assert waited.returncode == 0 and waited.stdout.startswith(f"{done}  done"), waited.stderr
    assert "3/3 posters" in waited.stdout
    listed = posterq("jobs", "list", *base)
    assert listed.returncode == 0 and listed.stdout.splitlines()[0].startswith(done)
    out = tmp_path / "fetched.csv"
    fetched = posterq("jobs", "download", done, *base, "--out", str(out))
    assert fetched.returncode == 0, fetched.stderr
    assert out.read_bytes() == api.get(f"/jobs/{done}/results", params={"format": "csv"}).content
    refused = posterq("jobs", "cancel", done, *base)
    assert refused.returncode == 1 and "(job_finished)" in refused.stderr
    shown = posterq("jobs", "show", "f" * 32, *base)
    assert shown.returncode == 1 and "(job_not_found)" in shown.stderr


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["terminal", "started-ignoring-sigint"])
def test_ctrl_c_on_submit_names_the_job_and_how_to_fetch_it(api, spawn_worker, tmp_path, sigint_ignored):
    # Issue 23: a CI run started in the background (SIGINT ignored, inherited through exec) had
    # `posterq submit` poll on through the Ctrl-C; it hears it however it was started.
    folder = tmp_path / "posters"
    write_posters(folder, 12)
    out = tmp_path / "genres.csv"
    # No worker yet: the job waits, and Ctrl-C comes while `submit` waits for it.
    with running("submit", str(folder), "--api", api.url, "--out", str(out), "--no-progress",
                 sigint_ignored=sigint_ignored) as process:
        (job_id,) = _accepted_jobs(process, 12)
        stderr = interrupt(process)
    assert process.returncode == 130, stderr
    assert f"interrupted: no row finished: nothing written, {out} left as it was" in stderr
    assert _results_in(tmp_path) == []
    fetch = f"posterq jobs download {job_id} --api {api.url} --out {out}"
    assert fetch in stderr and f"posterq jobs cancel {job_id} --api {api.url}" in stderr
    # The job went on: with a worker, the printed command fetches every row.
    spawn_worker("after-ctrl-c@test")
    assert posterq("jobs", "wait", job_id, "--api", api.url).returncode == 0
    assert posterq(*fetch.split()[1:]).returncode == 0
    assert len(out.read_text().splitlines()) == 13


def test_ctrl_c_while_re_running_submit_keeps_the_result_and_sets_the_finished_rows_aside(
        api, spawn_worker, tmp_path):
    # Issue 23: Ctrl-C part-way through re-running `posterq submit` replaced a complete keep.csv
    # with the rows finished so far. 200 posters here (the had 500), three jobs of at most 80.
    folder = tmp_path / "posters"
    write_posters(folder, 200)
    out = tmp_path / "keep.csv"
    worker = spawn_worker("re-run@test")
    first = posterq("submit", str(folder), "--api", api.url, "--out", str(out), "--no-progress")
    assert first.returncode == 0 and len(out.read_text().splitlines()) == 1 + 200, first.stderr
    before = out.read_bytes()
    # --no-reuse: the same posters again would get their stored results at intake, and the run
    # would be over before there is a moment to interrupt.
    with running("submit", str(folder), "--api", api.url, "--out", str(out), "--no-progress",
                 "--no-reuse") as process:
        job_ids = _accepted_jobs(process, 200)
        seen = {}

        def part_way() -> bool:
            jobs = [api.get(f"/jobs/{job_id}").json() for job_id in job_ids]
            seen["finished"] = sum(job["done"] + job["failed"] for job in jobs)
            return seen["finished"] > 0 and not all(JobStatus(job["status"]).final for job in jobs)

        # Checked while the worker is stopped, which stays stopped until `submit` has ended: the
        # rows set aside are exactly those finished at the Ctrl-C.
        stderr = interrupt_when(process, part_way, frozen=worker.pid, hold=True)
    assert process.returncode == 130, stderr
    assert out.read_bytes() == before
    aside = tmp_path / "keep.csv.partial"
    rows = aside.read_text().splitlines()
    assert 0 < len(rows) - 1 == seen["finished"] < 200
    assert f"interrupted: {out} left as it was; {len(rows) - 1} rows written to {aside}" in stderr
    for job_id in job_ids:
        assert f"posterq jobs cancel {job_id} --api {api.url}" in stderr
    assert _results_in(tmp_path) == ["keep.csv", "keep.csv.partial"]  # no temporary file left


def _results_in(folder) -> list[str]:
    # Result files, side files and temporary files (.NAME.RANDOM.partial); not posters or worker logs.
    return sorted(path.name for path in folder.iterdir() if ".csv" in path.name)


def _accepted_jobs(process, posters: int) -> list[str]:
    # The ids `posterq submit` prints the moment each job is accepted ("job ID: N posters accepted").
    ids, accepted = [], 0
    deadline = time.monotonic() + 60
    while accepted < posters and time.monotonic() < deadline:
        line = process.stderr.readline()
        if line.startswith("job ") and line.rstrip().endswith("posters accepted"):
            ids.append(line.split()[1].rstrip(":"))
            accepted += int(line.split()[2])
        elif not line:
            break
    assert accepted == posters, f"posterq submit printed {accepted} of {posters} accepted posters"
    return ids
