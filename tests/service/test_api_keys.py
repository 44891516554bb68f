"""API keys (POSTERQ_API_KEYS, POSTERQ_API_KEYS_FILE) over real HTTP, with real Redis and a real worker:
every route but the probes and the page needs a key, a job is visible only to the key that made it, keys
are never logged or stored, and `posterq submit` and the page take a key.

    pytest -m api_keys
"""

import base64
import csv
import hashlib
import io
import secrets
import time
from pathlib import Path

import pytest
import redis
import requests
import schemathesis
from samples import poster_bytes, write_posters

from posterq.cli import main
from posterq.exceptions import PosterqError

from .browsing import open_page
from .openapi_checks import answers_as_documented

pytestmark = pytest.mark.api_keys

KEY_A = "alpha-" + secrets.token_urlsafe(24)
KEY_B = "bravo-" + secrets.token_urlsafe(24)
WRONG = "wrong-" + secrets.token_urlsafe(24)
# What only the probes and the page may be called without: by path, not by endpoint name, so that
# making another route public fails here.
PUBLIC = {"/healthz", "/readyz", "/", "/static/<name>"}


def _bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _files(count: int, start: int = 0):
    return [("files", (f"poster_{i}.jpg", poster_bytes(i))) for i in range(start, start + count)]


@pytest.fixture(scope="module", autouse=True)
def worker(start_worker):
    """One worker (it needs no key: workers talk to Redis, not to the API)."""
    return start_worker("keys-worker@test")


@pytest.fixture(scope="module")
def keyed_settings(service_settings):
    """The test settings with two API keys."""
    return service_settings.replace(api_keys=f"{KEY_A}, {KEY_B}")


@pytest.fixture
def keyed(make_api, keyed_settings):
    """An API with two keys, over HTTP."""
    return make_api(keyed_settings)


def _call(server, method: str, path: str, **kwargs) -> requests.Response:
    return server.http.request(method, server.url + path, timeout=30, **kwargs)


def _refused(response: requests.Response, code: str) -> None:
    assert response.status_code == 401, (response.status_code, response.text[:300])
    assert response.json()["error"]["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def _forbidden(response: requests.Response) -> None:
    assert response.status_code == 403, (response.status_code, response.text[:300])
    assert response.json()["error"]["code"] == "operator_only"


def test_every_route_but_the_probes_and_the_page_needs_a_key(keyed, redis_client):
    routes = [(rule.rule, method) for rule in keyed.app.url_map.iter_rules()
              for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    assert {rule for rule, _ in routes} >= PUBLIC and len(routes) >= 10
    for rule, method in routes:
        path = rule.replace("<job_id>", "0" * 32).replace("<name>", "app.js")
        # A body that would make a job, were the key not missing.
        body = {"files": _files(1)} if method == "POST" else {}
        if rule in PUBLIC:
            assert _call(keyed, method, path).status_code in (200, 503), rule  # /readyz: 503 is not ready
            continue
        _refused(_call(keyed, method, path, **body), "missing_api_key")
        _refused(_call(keyed, method, path, headers=_bearer(WRONG), **body), "invalid_api_key")
        _refused(_call(keyed, method, path, headers={"Authorization": f"Basic {KEY_A}"}, **body),
                 "missing_api_key")
        _refused(_call(keyed, method, path, headers=_bearer(KEY_A + "x"), **body), "invalid_api_key")
    _refused(_call(keyed, "GET", "/no/such/route"), "missing_api_key")
    assert redis_client.keys("pqtest:job:*") == []  # nothing refused left a job behind
    # With a key, the same routes answer.
    assert _call(keyed, "GET", "/limits", headers=_bearer(KEY_A)).status_code == 200
    # /metrics shows every key's work: an operator's key only (none is configured here).
    _forbidden(_call(keyed, "GET", "/metrics", headers=_bearer(KEY_B)))
    assert _call(keyed, "GET", "/analysis/", headers=_bearer(KEY_B)).json() == {"result": "Send post request"}


def test_a_job_is_visible_only_to_the_key_that_made_it(keyed, redis_client):
    response = _call(keyed, "POST", "/jobs", headers=_bearer(KEY_A), files=_files(2))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    done = _call(keyed, "GET", f"/jobs/{job_id}", headers=_bearer(KEY_A), params={"wait": 20}).json()
    assert done["status"] == "done" and len(done["results"]) == 2
    unknown = "f" * 32
    for method, path in (("GET", f"/jobs/{job_id}"), ("GET", f"/jobs/{job_id}?wait=1"),
                         ("GET", f"/jobs/{job_id}/results"), ("DELETE", f"/jobs/{job_id}")):
        theirs = _call(keyed, method, path, headers=_bearer(KEY_B))
        nobodys = _call(keyed, method, path.replace(job_id, unknown), headers=_bearer(KEY_B))
        assert (theirs.status_code, theirs.json()["error"]["code"]) == (404, "job_not_found")
        # The same answer as for a job that does not exist: nothing tells that it does.
        assert theirs.json()["error"] == {**nobodys.json()["error"], "message": nobodys.json()["error"][
            "message"].replace(unknown, job_id)}
        _refused(_call(keyed, method, path), "missing_api_key")
    # B's DELETE changed nothing: A still sees the job done, with its results.
    again = _call(keyed, "GET", f"/jobs/{job_id}", headers=_bearer(KEY_A)).json()
    assert again["status"] == "done" and again["results"] == done["results"]
    rows = _call(keyed, "GET", f"/jobs/{job_id}/results", headers=_bearer(KEY_A), params={"format": "jsonl"})
    assert len(rows.text.splitlines()) == 2
    # The record (the ledger's row) names the key by its digest, and no record holds the key itself.
    store = keyed.app.extensions["posterq"]["store"]
    assert store.jobs.owner(job_id) == hashlib.sha256(KEY_A.encode()).hexdigest()
    record = redis_client.hgetall(f"pqtest:job:{job_id}")
    assert record and not any(KEY_A.encode() in value for value in record.values())
    # A's own DELETE reaches its job, which is final: nothing to cancel, its results stay.
    mine = _call(keyed, "DELETE", f"/jobs/{job_id}", headers=_bearer(KEY_A))
    assert (mine.status_code, mine.json()["error"]["code"]) == (409, "job_finished")


def test_a_one_poster_analysis_belongs_to_its_key(keyed):
    answer = _call(keyed, "POST", "/analysis/", headers=_bearer(KEY_B), data=poster_bytes(4))
    assert answer.status_code == 200, answer.text
    job_id = answer.json()["job"]
    assert _call(keyed, "GET", f"/jobs/{job_id}", headers=_bearer(KEY_B)).json()["status"] == "done"
    assert _call(keyed, "GET", f"/jobs/{job_id}", headers=_bearer(KEY_A)).status_code == 404


def test_keys_come_from_a_file_too(make_api, service_settings, tmp_path):
    key_c = "charlie-" + secrets.token_urlsafe(24)
    keys = tmp_path / "keys"
    keys.write_text(f"# the keys of posterq\n\n  {key_c}  \n# {KEY_B} (revoked)\n")
    only_file = make_api(service_settings.replace(api_keys_file=str(keys)))
    assert _call(only_file, "GET", "/limits", headers=_bearer(key_c)).status_code == 200
    _refused(_call(only_file, "GET", "/limits", headers=_bearer(KEY_B)), "invalid_api_key")
    both = make_api(service_settings.replace(api_keys=KEY_A, api_keys_file=str(keys)))
    for key in (KEY_A, key_c):
        assert _call(both, "GET", "/limits", headers=_bearer(key)).status_code == 200


@pytest.mark.parametrize("keys_file, env_keys", [
    ("# every key revoked\n", ""),  # an empty file must not leave the API open
    (None, ""),  # a file that is not there
    ("", "short-key"),  # a guessable key
    ("", "x" * 20 + "\"quoted\""),  # a key a Bearer header cannot carry
])
def test_keys_that_cannot_work_stop_the_start(service_settings, serve_api, tmp_path, keys_file, env_keys):
    from posterq.api import create_app

    path = tmp_path / "keys"
    if keys_file:
        path.write_text(keys_file)
    settings = service_settings.replace(api_keys=env_keys, api_keys_file="" if keys_file == "" else str(path))
    with pytest.raises(PosterqError) as refused:
        create_app({"SETTINGS": settings})
    assert refused.value.code == "bad_config"
    # `posterq api` says why and exits, before gunicorn starts.
    server = serve_api(settings, wait=False)
    assert server.process.wait(timeout=60) == 2
    assert "bad_config" in server.log()
    if env_keys:
        # The message names the key's place, not the key.
        assert env_keys not in refused.value.message and env_keys not in server.log()


def _everything_in(client: redis.Redis) -> bytes:
    """Every key name and value of the database, as one blob to search."""
    dump = []
    for key in client.scan_iter():
        kind = client.type(key)
        dump.append(key)
        if kind == b"string":
            dump.append(client.get(key))
        elif kind == b"hash":
            dump.extend(b"%s=%s" % pair for pair in client.hgetall(key).items())
        elif kind == b"list":
            dump.extend(client.lrange(key, 0, -1))
        elif kind == b"set":
            dump.extend(client.smembers(key))
        elif kind == b"zset":
            dump.extend(client.zrange(key, 0, -1))
    return b"\n".join(dump)


def test_keys_are_never_logged_or_stored(serve_api, keyed_settings, redis_client):
    server = serve_api(keyed_settings)  # gunicorn with its access log, and posterq's INFO logging
    http = requests.Session()
    submitted = http.post(server.url + "/jobs", headers=_bearer(KEY_A), files=_files(2), timeout=30)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert http.get(f"{server.url}/jobs/{job_id}", headers=_bearer(KEY_A), params={"wait": 20},
                    timeout=60).json()["status"] == "done"
    assert http.get(f"{server.url}/jobs/{job_id}", headers=_bearer(KEY_B), timeout=30).status_code == 404
    # A wrong key, a key sent as Basic credentials (curl -u KEY:, whose user name gunicorn's default
    # access log shows), a bare key.
    basic = base64.b64encode(f"{KEY_B}:".encode()).decode()
    for headers in (_bearer(WRONG), {"Authorization": f"Basic {basic}"}, {"Authorization": WRONG}):
        assert http.get(server.url + "/limits", headers=headers, timeout=30).status_code == 401
    server.stop()
    log = server.log()
    assert f"/jobs/{job_id}" in log and "401" in log  # the access log was written
    stored = _everything_in(redis_client)
    assert hashlib.sha256(KEY_A.encode()).hexdigest().encode() in stored
    for key in (KEY_A, KEY_B, WRONG):
        assert key not in log
        assert key.encode() not in stored


def test_posterq_submit_takes_a_key(keyed, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "posters"
    write_posters(folder, 3)
    out = tmp_path / "genres.csv"
    args = ["submit", str(folder), "--api", keyed.url, "--out", str(out), "--no-progress"]
    monkeypatch.delenv("POSTERQ_API_KEY", raising=False)
    assert main(args) == 1
    error = capsys.readouterr().err
    assert "missing_api_key" in error and "POSTERQ_API_KEY" in error
    assert main([*args, "--api-key", WRONG]) == 1
    assert "invalid_api_key" in capsys.readouterr().err
    assert main([*args, "--api-key", KEY_A]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 3 and all(row["genres"] and not row["error"] for row in rows)
    out.unlink()
    monkeypatch.setenv("POSTERQ_API_KEY", KEY_B)
    assert main(args) == 0 and out.is_file()
    assert KEY_A not in capsys.readouterr().out


def test_the_page_takes_a_key(browser, keyed, tmp_path):
    tab = open_page(browser, keyed.url, wait_for_limits=False)  # the limits need the key
    try:
        page = tab.page
        # The page loads without a key, asks for one, and says why.
        page.wait_for_selector("#key-form:not([hidden])")
        assert "missing_api_key" in page.text_content("#alert")
        page.fill("#api-key", WRONG)
        page.click("#key-use")
        page.locator("#alert", has_text="invalid_api_key").wait_for()
        page.fill("#api-key", KEY_A)
        page.click("#key-use")
        page.wait_for_selector("#limits:not(:empty)", state="attached")
        assert page.is_hidden("#alert")
        tab.pick(write_posters(tmp_path / "posters", 2))
        [job_id] = tab.wait_over()
        assert [card["state"] for card in tab.cards()] == ["ok", "ok"]
        # The job is A's; its download (fetched with the key, since a link cannot send one) is the API's.
        with page.expect_download() as download:
            page.click("#download-csv")
        expected = _call(keyed, "GET", f"/jobs/{job_id}/results", headers=_bearer(KEY_A),
                         params={"format": "csv"}).content
        assert Path(download.value.path()).read_bytes() == expected
        assert _call(keyed, "GET", f"/jobs/{job_id}", headers=_bearer(KEY_B)).status_code == 404
        # A reload keeps the key for this tab.
        page.reload()
        page.wait_for_selector("#limits:not(:empty)", state="attached")
        assert page.input_value("#api-key") == KEY_A
        unexpected = [p for p in tab.problems if "401" not in p]
        assert unexpected == []
    finally:
        tab.page.context.close()


def test_the_document_declares_the_key_and_every_route_enforces_it(keyed):
    schema = schemathesis.openapi.from_url(keyed.url + "/openapi.json", headers=_bearer(KEY_A))

    @schema.auth()
    class ValidKey:
        # Every generated request carries the key, as explicit auth: schemathesis then probes each
        # answer given with it by sending the request without a key and with a wrong one.
        def get(self, case, context):
            return KEY_A

        def set(self, case, data, context):
            case.headers = {**(case.headers or {}), **_bearer(data)}

    assert schema.raw_schema["security"] == [{"bearerAuth": []}]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        public = operation.definition.raw.get("security") == []
        assert public == (operation.path.replace("{", "<").replace("}", ">") in PUBLIC), operation.label
        if not public:
            assert "401" in operation.definition.raw["responses"], operation.label
        # ignored_auth stays on: for every answer given with the key, it sends the same request
        # without one and with a wrong one, and fails unless both are refused.
        answers_as_documented(operation)


def test_only_operators_see_every_keys_work(make_api, keyed_settings):
    operator = "ops-" + secrets.token_urlsafe(24)
    api = make_api(keyed_settings.replace(operator_keys=operator))
    # A queue no worker reads, so that the job's posters are still waiting when /metrics is read.
    lonely = make_api(keyed_settings.replace(operator_keys=operator, queue="pqtest-nobody",
                                             key_prefix="pqtest-nobody"))
    assert _call(lonely, "POST", "/jobs", headers=_bearer(KEY_A), files=_files(2)).status_code == 202
    _forbidden(_call(lonely, "GET", "/metrics", headers=_bearer(KEY_A)))
    metrics = _call(lonely, "GET", "/metrics", headers=_bearer(operator))
    assert metrics.status_code == 200
    label = hashlib.sha256(KEY_A.encode()).hexdigest()[:12]
    assert f'posterq_key_queue_posters{{key="{label}"}} 2.0' in metrics.text
    assert f'posterq_key_queue_age_seconds{{key="{label}"}}' in metrics.text
    # /readyz: how many workers for anyone, their host names for operators only.
    deadline = time.monotonic() + 30  # the database was flushed: wait for the worker's next heartbeat
    while _call(api, "GET", "/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    public = _call(api, "GET", "/readyz").json()
    assert public["worker_count"] == 1 and "workers" not in public
    assert "workers" not in _call(api, "GET", "/readyz", headers=_bearer(KEY_A)).json()
    assert "keys-worker@test" in _call(api, "GET", "/readyz", headers=_bearer(operator)).json()["workers"]
    # An operator's key is an API key too.
    assert _call(api, "GET", "/limits", headers=_bearer(operator)).status_code == 200
