"""Malformed requests over real HTTP (real Redis; a real worker where results are read; `posterq api` under
gunicorn for its own refusals): every one answers a JSON 4xx, never a 500, leaves no job behind, and no
error message echoes megabytes of input or the server's absolute paths.

    pytest -m malformed
"""

import json
import socket
import zipfile

import pytest
import requests
from harness import RedisServer, free_port
from samples import poster_bytes, write_posters, zip_bytes

pytestmark = pytest.mark.malformed

# A message may quote a little of the request (posterq.api.handlers.MAX_MESSAGE, plus a note of its length).
LONGEST_MESSAGE = 400


def _zip(members: dict[str, bytes]) -> bytes:
    return zip_bytes(members, zipfile.ZIP_STORED)


def _json_error(response, status: int, code: str | None = None) -> dict:
    """The response's error, after checking that it is the API's JSON error with this status (and code)."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert error["message"] and len(error["message"]) <= LONGEST_MESSAGE, error
    if code is not None:
        assert error["code"] == code, error
    return error


def _job_keys(redis_client) -> list[bytes]:
    return redis_client.keys("pqtest:job:*")


_JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("kwargs, status, code", [
    # RecursionError in the JSON parser: 100,000 nested arrays, then objects.
    ({"data": "[" * 100_000, "headers": _JSON}, 400, "bad_json"),
    ({"data": '{"a":' * 100_000, "headers": _JSON}, 400, "bad_json"),
    ({"data": b'{"directory": "\xff\xfe"}', "headers": _JSON}, 400, "bad_json"),
    # JSON's 1e400 is infinity, which int() refuses with OverflowError, not ValueError.
    ({"data": '{"directory": "x", "top_k": 1e400}', "headers": _JSON}, 400, "bad_top_k"),
    ({"data": '{"directory": "x", "top_k": NaN}', "headers": _JSON}, 400, "bad_top_k"),
    ({"data": '{"directory": "x", "top_k": -1e400}', "headers": _JSON}, 400, "bad_top_k"),
    # Zip members whose names have no parts: the archive itself, not a file in it.
    ({"data": _zip({".": b"x"}), "headers": {"Content-Type": "application/zip"}}, 400, "zip_unsafe_path"),
    ({"data": _zip({"./.": b"x", "a.jpg": b"y"}), "headers": {"Content-Type": "application/zip"}},
     400, "zip_unsafe_path"),
    ({"files": {"zip": ("x.zip", _zip({".": b"x"}))}}, 400, "zip_unsafe_path"),
    ({"data": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
     400, "no_posters"),
    ({"data": b"", "headers": {"Content-Type": "multipart/form-data"}}, 400, "no_posters"),
])
def test_malformed_submissions_are_json_4xx(api, redis_client, kwargs, status, code):
    _json_error(api.post("/jobs", **kwargs), status, code)
    assert _job_keys(redis_client) == []


def test_directories_the_filesystem_refuses_are_4xx(api, redis_client, data_root):
    loop = data_root / "loop"
    for name, target in (("loop", "loop-back"), ("loop-back", "loop")):
        (data_root / name).unlink(missing_ok=True)
        (data_root / name).symlink_to(data_root / target)
    for directory, status, code in (
        (data_root / ("a" * 300), 400, "bad_directory"),  # ENAMETOOLONG from stat(): over 255 bytes
        (data_root / ("b" * 300) / "posters", 400, "bad_directory"),  # ... in the middle of the path
        (loop, 400, "bad_path"),  # a symlink loop: RuntimeError from Path.resolve()
        ("~no-such-user-here/posters", 400, "bad_path"),  # RuntimeError from Path.expanduser()
        (f"{data_root}/\ud800", 400, "bad_path"),  # a lone surrogate: UnicodeEncodeError from stat()
    ):
        error = _json_error(api.post("/jobs", json={"directory": str(directory)}), status, code)
        assert str(data_root) not in error["message"]
    assert _job_keys(redis_client) == []


@pytest.mark.parametrize("suffix", [":items", ":results", ":blob:0", ":done", ":attempts"])
def test_a_job_id_never_reaches_another_key(api, redis_client, suffix):
    job = api.post("/jobs", files=[("files", ("a.jpg", poster_bytes(1)))]).json()
    before = {key: redis_client.type(key) for key in _job_keys(redis_client)}
    other = job["id"] + suffix
    for response in (api.get(f"/jobs/{other}"), api.get(f"/jobs/{other}", params={"wait": 1}),
                     api.get(f"/jobs/{other}/results"), api.delete(f"/jobs/{other}")):
        _json_error(response, 404, "job_not_found")
    # The job those keys belong to is untouched: not cancelled, its poster's bytes still there.
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "queued"
    assert {key: redis_client.type(key) for key in _job_keys(redis_client)} == before
    assert redis_client.exists(f"pqtest:job:{job['id']}:blob:0")


@pytest.mark.parametrize("job_id", [
    "nope", "0" * 31, "0" * 33, "A" * 32, "*", "%2A", "g" * 32, "0" * 31 + "\u0660", "x" * 4000,
])
def test_ids_of_the_wrong_shape_are_404(api, job_id):
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/results"):
        _json_error(api.get(path), 404, "job_not_found")
    _json_error(api.delete(f"/jobs/{job_id}"), 404, "job_not_found")


@pytest.mark.parametrize("path", [
    "/static/" + "a" * 300 + ".js",  # ENAMETOOLONG if the name became a path
    "/static/..%2Fcli.py", "/static/%2e%2e%2f__init__.py", "/static/app.js%00", "/jobs/%2e%2e",
    "/" + "x" * 5000,
])
def test_odd_paths_are_json_404(api, path):
    _json_error(api.get(path), 404)


def test_messages_do_not_echo_megabytes_or_server_paths(api, data_root, tmp_path):
    huge = "/" + "b" * 1_000_000
    _json_error(api.post("/jobs", json={"directory": huge}), 403, "path_outside_roots")
    name = "../" + "c" * 60_000 + ".jpg"
    _json_error(api.post("/jobs", files={"zip": ("x.zip", _zip({name: b"x"}))}), 400, "zip_unsafe_path")
    # A link inside the data root that leads out of it: refused without naming where it leads.
    outside = tmp_path / "outside-the-roots"
    outside.mkdir()
    link = data_root / "leads-out"
    link.unlink(missing_ok=True)
    link.symlink_to(outside)
    error = _json_error(api.post("/jobs", json={"directory": str(link)}), 403, "path_outside_roots")
    assert str(outside) not in error["message"] and str(data_root) not in error["message"]


def test_a_result_error_names_no_server_path(api, spawn_worker, data_root, tmp_path):
    # A poster that turns into a link out of the roots after submission fails in the worker with
    # path_outside_roots; its message reaches the client and must not say where the roots are.
    folder = data_root / "turncoat"
    [good, bad, looped] = write_posters(folder, 3)
    job = api.post("/jobs", json={"directory": str(folder)}).json()
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(bad.read_bytes())
    bad.unlink()
    bad.symlink_to(secret)
    looped.unlink()
    looped.symlink_to(looped)  # a loop fails its poster alone, not the worker's batch
    spawn_worker("malformed-worker@test")
    done = api.wait(job["id"])
    errors = {row["name"]: row["error"] for row in done["results"]}
    assert errors[good.name] is None and errors[bad.name]["code"] == "path_outside_roots"
    assert errors[looped.name]["code"] == "bad_path"
    csv_text = api.get(f"/jobs/{job['id']}/results", params={"format": "csv"}).text
    for text in (json.dumps(done), csv_text):
        assert str(data_root) not in text and str(tmp_path) not in text


def test_a_redis_that_refuses_is_not_called_unreachable(make_api, service_settings, tmp_path):
    # A private Redis that is a replica (of a master nobody runs) answers reads and refuses every
    # write (READONLY): a 503 that says Redis refused, where the old handler said it could not be
    # reached. (A full Redis is refused before any write: tests/service/test_full_redis.py.)
    with RedisServer(tmp_path / "redis", "--appendonly", "no", "--replicaof", "127.0.0.1",
                     str(free_port())) as server:
        refusing = make_api(service_settings.replace(redis_url=server.url))
        error = _json_error(refusing.post("/jobs", files=[("files", ("p.jpg", b"\xff" * 1000))]), 503,
                            "unavailable")
        assert "refused" in error["message"] and "cannot be reached" not in error["message"]


def _raw(port: int, data: bytes) -> tuple[int, dict]:
    """Send raw bytes to the server; its status and JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(data)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *headers = head.decode("latin-1").split("\r\n")
    assert any(h.lower().startswith("content-type: application/json") for h in headers), answer[:500]
    return int(status_line.split()[1]), json.loads(body)


def test_gunicorns_own_refusals_are_json(serve_api, service_settings):
    server = serve_api(service_settings)
    cases = [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),  # over limit_request_line
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"z" * 10_000 + b"\r\n\r\n", 431),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400),
    ]
    for request, status in cases:
        answered, body = _raw(server.port, request)
        assert answered == status, (request[:60], answered, body)
        assert body["error"]["code"] and 0 < len(body["error"]["message"]) <= 220, body
    # And the app's own errors, through the same server.
    _json_error(requests.get(server.url + "/jobs/" + "0" * 32, timeout=30), 404, "job_not_found")
