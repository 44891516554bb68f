"""posterq.client: how a folder is cut into jobs under the server's limits; refusals waited out."""

from posterq.client import plan_chunks


def test_chunks_respect_both_limits():
    assert plan_chunks([10] * 5, max_posters=2, max_bytes=10**6) == [[0, 1], [2, 3], [4]]
    big = 40 * 1024
    assert plan_chunks([big, big, big], max_posters=10, max_bytes=64 * 1024 + 2 * big + 1024) == [[0, 1], [2]]


def test_a_full_queue_is_waited_out_and_the_same_upload_sent_again():
    import threading

    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    from posterq.client import ServiceClient

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
