"""`posterq api [--host H] [--port P] [--workers N] [--threads T]`: serve the API (gunicorn, else Flask's).

Threaded gunicorn workers: a request that waits for a job (POST /analysis/, GET /jobs/<id>?wait=S)
holds one thread, not a whole process, so many clients can wait at once. What gunicorn refuses
before the app sees it (a request line over 4094 bytes: 414, headers over its limits: 431, a
malformed request line: 400) is answered with the API's JSON errors too (json_error_worker).
"""

import argparse
import json
import logging
import sys

from posterq.cli import EXIT_OK, EXIT_USAGE

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `posterq api`'s arguments."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=32, metavar="T",
                        help="threads per worker process, each serving one request (default 32)")
    parser.add_argument("--dev", action="store_true", help="use Flask's development server, not gunicorn")


def run(args: argparse.Namespace) -> int:
    """Serve the API until interrupted."""
    from posterq.api import create_app
    from posterq.exceptions import PosterqError

    try:
        app = create_app()
    except PosterqError as exc:  # a setting that cannot work (an API key file that holds no key...)
        print(f"posterq api: error: {exc.message} ({exc.code})", file=sys.stderr)
        return EXIT_USAGE
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:
        BaseApplication = None
    if args.dev or BaseApplication is None:
        print(f"posterq api: serving on http://{args.host}:{args.port} (Flask development server)")
        app.run(host=args.host, port=args.port, threaded=True)
        return EXIT_OK

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", json_error_worker())
            self.cfg.set("threads", args.threads)
            # Uploads of up to POSTERQ_MAX_REQUEST_BYTES take a while on slow links.
            self.cfg.set("timeout", 120)
            self.cfg.set("accesslog", "-")
            # gunicorn's default format, less %(u)s: the user name of a Basic Authorization header,
            # where a client that sends its API key that way (curl -u KEY:) would have it logged.
            self.cfg.set("access_log_format", '%(h)s %(l)s - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"')

        def load(self):
            return app

    print(f"posterq api: serving on http://{args.host}:{args.port} (gunicorn, {args.workers} workers x "
          f"{args.threads} threads)")
    Server().run()
    return EXIT_OK


def json_error_worker():
    """gunicorn's threaded worker class, answering what gunicorn itself refuses with JSON errors."""
    from gunicorn import util
    from gunicorn.workers.gthread import ThreadWorker

    class JsonErrorWorker(ThreadWorker):
        def init_process(self):
            # gunicorn writes its own refusals through util.write_error, as HTML, and has no hook
            # for their format: each worker process swaps that one function for write_json_error.
            util.write_error = write_json_error
            super().init_process()

    return JsonErrorWorker


def write_json_error(sock, status: int, reason: str, message: str) -> None:
    """Write one of gunicorn's refusals as {"error": {"code", "message"}} (util.write_error's signature)."""
    from gunicorn import util

    from posterq.api.handlers import clip, status_code

    # gunicorn's message may quote the request (a malformed line): clipped, like every message.
    text = clip(message or reason, 200) if status != 500 else "an unexpected error happened; see the API log"
    body = json.dumps({"error": {"code": status_code(status), "message": text}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)
