"""posterq.client: a folder cut into jobs under the server's limits; what is retried, what fails at once."""

import logging
import socket
import socketserver
import threading

import pytest
from harness import free_port  # a port nothing listens on
from samples import write_posters

from posterq.chunking import plan_chunks
from posterq.cli import main
from posterq.client import ServiceClient
from posterq.exceptions import PosterqError


def test_chunks_respect_both_limits():
    assert plan_chunks([10] * 5, max_posters=2, max_bytes=10**6) == [[0, 1], [2, 3], [4]]
    big = 40 * 1024
    assert plan_chunks([big, big, big], max_posters=10, max_bytes=64 * 1024 + 2 * big + 1024) == [[0, 1], [2]]


def test_a_full_queue_is_waited_out_and_the_same_upload_sent_again():
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    bodies = []

    @Request.application
    def server(request):
        # A real HTTP server that is full for its first request, as the API answers under backpressure.
        bodies.append(request.files["files"].read())
        if len(bodies) == 1:
            return Response('{"error": {"code": "queue_full", "message": "full"}}', 429,
                            {"Retry-After": "1", "Content-Type": "application/json"})
        return Response('{"id": "0123456789abcdef0123456789abcdef"}', 202,
                        {"Content-Type": "application/json"})

    http = make_server("127.0.0.1", 0, server, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        job = ServiceClient(f"http://127.0.0.1:{http.server_port}").submit([("a.jpg", b"poster bytes")])
    finally:
        http.shutdown()
    assert job["id"] == "0123456789abcdef0123456789abcdef"
    assert bodies == [b"poster bytes", b"poster bytes"]


def test_a_refused_connection_fails_at_once_with_one_line(caplog):
    # A refused connection is not a busy server: no retry (urllib3 logs each one), one short reason.
    client = ServiceClient(f"127.0.0.1:{free_port()}")  # no scheme: http:// is meant
    with caplog.at_level(logging.DEBUG, logger="urllib3"), pytest.raises(PosterqError) as failure:
        client.limits()
    assert failure.value.code == "unreachable"
    assert failure.value.message.endswith(": Connection refused"), failure.value.message
    assert not [r for r in caplog.records if "Retry" in r.getMessage()]


def test_submit_to_an_unreachable_service_says_so_in_one_line(tmp_path, capsys):
    write_posters(tmp_path / "p", 1)
    out = tmp_path / "x.csv"
    code = main(["submit", str(tmp_path / "p"), "--api", f"http://127.0.0.1:{free_port()}", "--out",
                 str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and err.strip().endswith("(unreachable)"), err
    assert not out.exists()


def test_submit_of_an_empty_folder_is_an_error_that_keeps_the_last_result(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    out = tmp_path / "genres.csv"
    out.write_text("path,genres\nlast-run.jpg,Drama\n")
    # No service is asked at all: the folder is looked at first.
    code = main(["submit", str(empty), "--api", f"http://127.0.0.1:{free_port()}", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no poster files" in err, err
    assert out.read_text() == "path,genres\nlast-run.jpg,Drama\n"


def test_a_connection_dropped_mid_request_is_sent_again():
    # A raw server that reads the first request and closes without an answer, then answers the second.
    listener = socket.create_server(("127.0.0.1", 0))
    requests_seen = []

    def serve():
        for answer in (None, b'{"max_file_bytes": 1}'):
            connection, _ = listener.accept()
            with connection:
                requests_seen.append(connection.recv(65536).split(b"\r\n")[0])
                if answer:
                    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    connection.sendall(head + b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        limits = ServiceClient(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=30).limits()
    finally:
        thread.join(timeout=30)
        listener.close()
    assert limits == {"max_file_bytes": 1}
    assert requests_seen == [b"GET /limits HTTP/1.1"] * 2


def test_a_prepared_body_and_an_analysis_go_as_given_and_a_timeout_keeps_its_code():
    import base64

    import urllib3
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    seen = []

    @Request.application
    def server(request):
        # A real HTTP server that records what came, answers a job, then a label, then the API's 504.
        seen.append((request.path, request.content_type, request.get_data()))
        if request.path == "/jobs":
            return Response('{"id": "0123456789abcdef0123456789abcdef"}', 202,
                            {"Content-Type": "application/json"})
        if len(seen) == 2:
            return Response('{"result": ["Drama"]}', 200, {"Content-Type": "application/json"})
        return Response('{"error": {"code": "timeout", "message": "no worker answered"}}', 504,
                        {"Content-Type": "application/json"})

    http = make_server("127.0.0.1", 0, server, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    body, content_type = urllib3.encode_multipart_formdata([("files", ("a.jpg", b"poster bytes"))])
    client = ServiceClient(f"http://127.0.0.1:{http.server_port}")
    try:
        job = client.submit_encoded(body, content_type)
        answer = client.analyse(b"\xff\xd8poster")
        with pytest.raises(PosterqError) as failure:
            client.analyse(b"\xff\xd8poster")
    finally:
        http.shutdown()
    assert job["id"] == "0123456789abcdef0123456789abcdef"
    assert answer == {"result": ["Drama"]}
    assert failure.value.code == "timeout"
    assert seen[0] == ("/jobs", content_type, body)  # the very bytes, encoded once by the caller
    assert seen[1] == ("/analysis/", "text/plain", base64.b64encode(b"\xff\xd8poster"))


def test_a_folder_is_submitted_by_its_path_for_the_server_to_list(tmp_path):
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    seen = []

    @Request.application
    def server(request):
        seen.append((request.method, request.path, request.get_json()))
        return Response('{"id": "0123456789abcdef0123456789abcdef", "enumerated": false}', 202,
                        {"Content-Type": "application/json"})

    http = make_server("127.0.0.1", 0, server, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        job = ServiceClient(f"http://127.0.0.1:{http.server_port}").submit_directory(tmp_path / "posters")
    finally:
        http.shutdown()
    assert job == {"id": "0123456789abcdef0123456789abcdef", "enumerated": False}
    assert seen == [("POST", "/jobs", {"directory": str(tmp_path / "posters")})]


class _NotHttp(socketserver.BaseRequestHandler):
    """Answers a request with a line that is not HTTP and hangs up, as a Redis port does."""

    def handle(self):
        self.request.recv(65536)
        self.request.sendall(b"-ERR unknown command\r\n")


@pytest.mark.parametrize("argv", [["jobs", "list"], ["jobs", "show", "f" * 32]])
def test_an_api_that_is_not_http_is_one_clear_line(argv, capsys, caplog):
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _NotHttp) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            code = main([*argv, "--api", f"127.0.0.1:{server.server_address[1]}"])
        finally:
            server.shutdown()
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and len(err) < 200, err
    assert "no HTTP answer" in err and "--api" in err and err.strip().endswith("(unreachable)")
    assert not [record for record in caplog.records if "Retrying" in record.getMessage()]


def test_an_api_url_with_a_wrong_path_says_that_api_is_the_services_root(capsys):
    from flask import Flask
    from werkzeug.serving import make_server

    http = make_server("127.0.0.1", 0, Flask("no-routes"), threaded=True)  # Flask's stock HTML 404
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        code = main(["jobs", "list", "--api", f"127.0.0.1:{http.server_port}/wrong"])
    finally:
        http.shutdown()
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "<" not in err, err
    assert "404 NOT FOUND" in err and "--api is the service's root URL" in err and "(http_404)" in err


@pytest.mark.parametrize("argv", [["submit", "{tmp}/p", "--out", "{tmp}/x.csv"], ["jobs", "list"],
                                  ["jobs", "retry", "f" * 32]])
def test_every_command_with_api_reads_posterq_api(argv, tmp_path, monkeypatch, capsys):
    write_posters(tmp_path / "p", 1)
    port = free_port()
    monkeypatch.setenv("POSTERQ_API", f"http://127.0.0.1:{port}")
    code = main([arg.format(tmp=tmp_path) for arg in argv])
    err = capsys.readouterr().err
    assert code == 1 and f"cannot reach http://127.0.0.1:{port}" in err, err


def test_without_retry_a_busy_answer_comes_at_once_and_request_gives_it_raw():
    from harness import AppServer
    from werkzeug.wrappers import Request, Response

    seen = []

    @Request.application
    def busy(request):
        # A proxy's 503 in front of the API: not the API's error shape.
        seen.append(request.path)
        return Response("<html>upstream unavailable</html>", 503, {"Retry-After": "1"})

    with AppServer(busy) as server, ServiceClient(server.url, timeout=30, retry=False) as client:
        assert client.request("GET", "/metrics").status_code == 503
        with pytest.raises(PosterqError) as failure:
            client.metrics()
    assert seen == ["/metrics", "/metrics"]  # each once: nothing sent again
    assert failure.value.code == "http_503"
    assert failure.value.message.startswith(f"GET /metrics: {server.url} answered 503 SERVICE UNAVAILABLE")
