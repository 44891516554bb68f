"""Output files on the service, and incident 3 of issue 23 replayed with real processes (the API over
HTTP, a real worker, real files): no request and no key can destroy a file at an output path.

An existing file is replaced only with "overwrite": true; a file or a link that appears after submit
is left as it is; the temporary file has no name anyone can plant a link at; a name the file system
cannot take is refused at submit; a write that fails shows in the job and in `posterq jobs show`;
with API keys, a key writes and reads only under the roots the keys file gives it.

    pytest -m outputs
"""

import os
import secrets
import shutil

import pytest
import requests
from commands import posterq
from harness import wait_for_job
from samples import deep_folder, write_posters

from posterq.api.auth import ApiKeys
from posterq.exceptions import PosterqError

pytestmark = pytest.mark.outputs

KEY_A = "alpha-" + secrets.token_urlsafe(24)
KEY_B = "bravo-" + secrets.token_urlsafe(24)
KEY_C = "charlie-" + secrets.token_urlsafe(24)
A_FILE = b"path,genres\nkey A's complete results,Drama\n"


@pytest.fixture
def outputs(tmp_path):
    """The one output root."""
    folder = tmp_path / "outputs"
    folder.mkdir()
    return folder.resolve()


@pytest.fixture
def settings(service_settings, outputs):
    """The test settings with an output root."""
    return service_settings.replace(output_roots=(outputs,))


@pytest.fixture
def folder(data_root):
    """A folder of five posters under the data root."""
    path = data_root / f"outputs-{secrets.token_hex(4)}"
    write_posters(path, 5)
    return path


def _written(api, job_id: str, http=None) -> dict:
    """The job once its output file stands written or failed for good."""
    return wait_for_job(api.url, job_id, http=http or api.http, timeout=120,
                        until=lambda job: job["output_status"] in ("written", "failed"))


def _submit(api, folder, output, http=None, **more) -> requests.Response:
    body = {"directory": str(folder), "output": str(output), **more}
    return (http or api.http).post(f"{api.url}/jobs", json=body, timeout=30)


def _refused(response: requests.Response, status: int, code: str) -> None:
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text


def test_an_existing_file_is_replaced_only_when_the_request_says_so(settings, outputs, folder, make_api,
                                                                   spawn_worker_with):
    api = make_api(settings)
    spawn_worker_with("outputs-overwrite@test", settings)
    target = outputs / "genres.csv"
    target.write_bytes(A_FILE)
    _refused(_submit(api, folder, target), 409, "output_exists")
    _refused(_submit(api, folder, target, overwrite=False), 409, "output_exists")
    assert api.get("/jobs").json()["jobs"] == []  # nothing was taken
    assert target.read_bytes() == A_FILE
    response = _submit(api, folder, target, overwrite=True)
    assert response.status_code == 202, response.text
    job = _written(api, response.json()["id"])
    assert (job["status"], job["output_status"], job["output_error"]) == ("done", "written", None)
    assert target.read_bytes() == api.get(f"/jobs/{job['id']}/results").content
    _refused(_submit(api, folder, target, overwrite="yes"), 400, "bad_output")


def test_a_file_or_link_that_appears_after_submit_is_left_as_it_is(settings, outputs, folder, tmp_path,
                                                                   make_api, spawn_worker_with):
    api = make_api(settings)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"not yours\n")
    appeared, linked = outputs / "appeared.csv", outputs / "linked.csv"
    # No worker yet: both jobs wait while the names are taken behind the API's back.
    first = _submit(api, folder, appeared).json()["id"]
    second = _submit(api, folder, linked).json()["id"]
    appeared.write_bytes(A_FILE)
    linked.symlink_to(victim)
    spawn_worker_with("outputs-appeared@test", settings)
    for job_id in (first, second):
        job = _written(api, job_id)
        assert job["status"] == "done"  # the posters were labelled; only the file was not written
        assert job["output_status"] == "failed" and job["output_error"]["code"] == "output_exists", job
    assert appeared.read_bytes() == A_FILE
    assert linked.is_symlink() and victim.read_bytes() == b"not yours\n"
    # No temporary file is left.
    assert sorted(path.name for path in outputs.iterdir()) == ["appeared.csv", "linked.csv"]


def test_no_link_planted_at_a_name_known_in_advance_is_followed(settings, outputs, folder, tmp_path, make_api,
                                                               spawn_worker_with):
    api = make_api(settings)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"not yours\n")
    target, replaced = outputs / "genres.csv", outputs / "replaced.csv"
    first = _submit(api, folder, target).json()["id"]
    # The names an earlier posterq wrote through (".NAME.JOBID.partial", the id is in the 202), and
    # any other name a neighbour could guess from what the 202 says.
    planted = [outputs / f".{target.name}.{first}.partial", outputs / f".{target.name}.partial",
               outputs / f"{target.name}.partial", outputs / f".{target.name}.tmp", outputs / f"{first}.csv"]
    for link in planted:
        link.symlink_to(victim)
    # With overwrite, a link planted at the output's own name is replaced, not written through.
    replaced.symlink_to(victim)
    overwriting = _submit(api, folder, replaced, overwrite=True).json()["id"]
    spawn_worker_with("outputs-links@test", settings)
    for path, job_id in ((target, first), (replaced, overwriting)):
        job = _written(api, job_id)
        assert (job["output_status"], job["output_error"]) == ("written", None), job
        download = api.get(f"/jobs/{job_id}/results").content
        assert len(download.splitlines()) == 6
        assert not path.is_symlink() and path.read_bytes() == download
    assert victim.read_bytes() == b"not yours\n"
    assert all(link.is_symlink() and link.readlink() == victim for link in planted)
    assert sorted(path.name for path in outputs.iterdir()) == sorted(
        [target.name, replaced.name, *(link.name for link in planted)])  # no temporary file left


@pytest.mark.parametrize(("leads", "code"), [("out of the roots", "path_outside_roots"),
                                              ("into another team's folder", "output_folder_changed")])
def test_a_folder_that_becomes_a_link_after_submit_is_not_written_through(settings, outputs, folder, tmp_path,
                                                                          make_api, spawn_worker_with, leads,
                                                                          code):
    api = make_api(settings)
    escape = tmp_path / "escape" if leads == "out of the roots" else outputs / "other-team"
    escape.mkdir()
    inner = outputs / "team"
    inner.mkdir()
    job_id = _submit(api, folder, inner / "genres.csv").json()["id"]
    inner.rmdir()
    inner.symlink_to(escape)
    spawn_worker_with("outputs-escape@test", settings)
    job = _written(api, job_id)
    assert job["output_status"] == "failed" and job["output_error"]["code"] == code, job
    assert list(escape.iterdir()) == []


@pytest.mark.parametrize(("name", "code"), [
    ("g" * 296 + ".csv", "output_name_too_long"),  # 300 characters: ENAMETOOLONG, 44 times, before
    ("a\x00b.csv", "bad_path"),
    ("folder.csv", "output_is_directory"),
])
def test_a_name_the_file_system_cannot_take_is_refused_at_submit(settings, outputs, folder, make_api, name,
                                                                 code):
    (outputs / "folder.csv").mkdir()
    api = make_api(settings)
    _refused(_submit(api, folder, f"{outputs}/{name}"), 400, code)
    _refused(_submit(api, folder, f"{outputs}/{name}", overwrite=True), 400, code)
    assert api.get("/jobs").json()["jobs"] == []


def test_an_output_path_longer_than_the_file_system_takes_is_refused_at_submit(settings, outputs, folder,
                                                                              make_api):
    api = make_api(settings)
    deep = deep_folder(outputs, os.pathconf(outputs, "PC_PATH_MAX") - 100)
    # Each part fits NAME_MAX; the whole path does not fit PATH_MAX.
    _refused(_submit(api, folder, deep / ("p" * 150 + ".csv")), 400, "output_path_too_long")


@pytest.mark.parametrize("swap", ["removed", "replaced by a file"])
def test_a_write_that_fails_shows_in_the_job_and_in_posterq_jobs_show(settings, outputs, folder, make_api,
                                                                      spawn_worker_with, swap):
    api = make_api(settings)
    inner = outputs / "team"
    inner.mkdir()
    job_id = _submit(api, folder, inner / "genres.csv").json()["id"]
    # Tests run as root, whom a read-only folder does not stop: the folder goes instead.
    shutil.rmtree(inner)
    if swap == "replaced by a file":
        inner.write_bytes(b"a file where the folder was\n")
    worker = spawn_worker_with("outputs-fails@test", settings)
    job = _written(api, job_id)
    assert (job["status"], job["done"], job["output_status"]) == ("done", 5, "failed"), job
    assert job["output_error"]["code"] == "output_folder_missing"
    assert str(outputs) not in job["output_error"]["message"]  # the server's paths stay its own
    shown = posterq("jobs", "show", job_id, "--api", api.url)
    assert shown.returncode == 0, shown.stderr
    assert "output NOT written" in shown.stdout and "(output_folder_missing)" in shown.stdout, shown.stdout
    # Recorded once, for good: neither the task nor the sweep tries it again.
    row = worker.store.ledger.get(job_id)
    assert (row["output_tries"], row["output_failed"]) == (1, True)
    assert job_id not in worker.store.ledger.outputs_due()


def test_a_failure_that_may_pass_is_tried_a_bounded_number_of_times(store, settings):
    job = store.jobs.create_directory("/nowhere", True, output="/nowhere/genres.csv")
    error = {"code": "output_write_failed", "message": "No space left on device"}
    tries = settings.max_output_tries
    assert [store.ledger.output_failed(job["id"], error, False, tries) for _ in range(tries)] == (
        [False] * (tries - 1) + [True])
    row = store.ledger.get(job["id"])
    assert (row["output_tries"], row["output_failed"], row["output_error"]) == (tries, True, error)
    assert store.jobs.get(job["id"])["output_status"] == "failed"


def test_a_try_that_lost_a_race_records_nothing(store):
    # The sweep's nudge and the task may both try; the one whose link() finds the other's file is
    # told the file is there, and the job stays `written`, with no error.
    job = store.jobs.create_directory("/nowhere", True, output="/nowhere/genres.csv")
    store.ledger.output_written(job["id"])
    error = {"code": "output_exists", "message": "a file appeared at the output's name"}
    assert store.ledger.output_failed(job["id"], error, True, 5) is True
    view = store.jobs.get(job["id"])
    assert (view["output_status"], view["output_error"]) == ("written", None)
    assert store.ledger.get(job["id"])["output_tries"] == 0
    # Two tries that both fail for good: the error is recorded once.
    other = store.jobs.create_directory("/nowhere", True, output="/nowhere/other.csv")
    assert [store.ledger.output_failed(other["id"], error, True, 5) for _ in range(2)] == [True, True]
    assert store.ledger.get(other["id"])["output_tries"] == 1


# --- API keys: incident 3, key B naming key A's file -------------------------------------------------


@pytest.fixture
def keyed(tmp_path, settings, outputs, data_root, make_api):
    """An API whose keys file gives A and B their own output and data folders; C has none of its own."""
    roots = {}
    for team in ("a", "b"):
        (outputs / team).mkdir()
        write_posters(data_root / f"team-{team}", 5)
        roots[team] = f"output_roots={outputs / team} data_roots={data_root / f'team-{team}'}"
    keys = tmp_path / "keys"
    keys.write_text(f"# one folder per team\n{KEY_A} {roots['a']}\n{KEY_B} 2 {roots['b']}\n{KEY_C}\n")
    return make_api(settings.replace(api_keys_file=str(keys)))


def _as(key: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def test_a_key_writes_and_reads_only_under_its_own_roots(keyed, outputs, data_root, settings,
                                                         spawn_worker_with):
    spawn_worker_with("outputs-keys@test", settings)
    a, b, c = _as(KEY_A), _as(KEY_B), _as(KEY_C)
    a_file = outputs / "a" / "genres.csv"
    response = _submit(keyed, data_root / "team-a", a_file, http=a)
    assert response.status_code == 202, response.text
    assert _written(keyed, response.json()["id"], http=a)["output_status"] == "written"
    kept = a_file.read_bytes()
    assert len(kept.splitlines()) == 6
    # Key B names key A's output file as its own, with and without overwrite: refused.
    for more in ({}, {"overwrite": True}):
        _refused(_submit(keyed, data_root / "team-b", a_file, http=b, **more), 403, "path_outside_key_roots")
    # Key C, who has no roots of its own and shares the global one, cannot replace it either.
    _refused(_submit(keyed, data_root / "team-b", a_file, http=c), 409, "output_exists")
    _refused(_submit(keyed, data_root / "team-b", a_file, http=c, overwrite=True), 403,
             "overwrite_not_allowed")
    assert a_file.read_bytes() == kept
    # Nor may B read A's folder, or write anywhere but its own root.
    _refused(_submit(keyed, data_root / "team-a", outputs / "b" / "x.csv", http=b), 403,
             "path_outside_key_roots")
    _refused(_submit(keyed, data_root / "team-b", outputs / "c.csv", http=b), 403, "path_outside_key_roots")
    # Key A may replace its own file, under its own root.
    again = _submit(keyed, data_root / "team-a", a_file, http=a, overwrite=True)
    assert again.status_code == 202, again.text
    assert _written(keyed, again.json()["id"], http=a)["output_status"] == "written"
    # Key C writes a new file in the shared root, and reads any folder under the global data roots.
    shared = _submit(keyed, data_root / "team-a", outputs / "c.csv", http=c)
    assert shared.status_code == 202, shared.text
    assert _written(keyed, shared.json()["id"], http=c)["output_status"] == "written"


def test_a_keys_file_that_gives_a_key_roots_outside_the_services_is_refused(tmp_path, settings, outputs):
    keys = tmp_path / "keys"
    for line in (f"{KEY_A} output_roots={tmp_path}", f"{KEY_A} data_roots={tmp_path}",
                 f"{KEY_A} output_roots=", f"{KEY_A} colour=blue"):
        keys.write_text(line + "\n")
        with pytest.raises(PosterqError) as refused:
            ApiKeys.from_settings(settings.replace(api_keys_file=str(keys)))
        assert refused.value.code == "bad_config" and KEY_A not in refused.value.message
    keys.write_text(f"{KEY_A} 3 output_roots={outputs}\n")
    loaded = ApiKeys.from_settings(settings.replace(api_keys_file=str(keys)))
    assert list(loaded.weights.values()) == [3.0]
    assert list(loaded.roots.values()) == [{"output_roots": (outputs,)}]
