"""`posterq api [--host H] [--port P] [--workers N] [--threads T]`: serve the API (gunicorn, else Flask's).

Threaded gunicorn workers: a request that waits for a job (POST /analysis/, GET /jobs/<id>?wait=S)
holds one thread, not a whole process, so many clients can wait at once.
"""

import argparse
import logging

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
    from api import create_app

    app = create_app()
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:
        BaseApplication = None
    if args.dev or BaseApplication is None:
        print(f"posterq api: serving on http://{args.host}:{args.port} (Flask development server)")
        app.run(host=args.host, port=args.port, threaded=True)
        return 0

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", args.threads)
            # Uploads of up to POSTERQ_MAX_REQUEST_BYTES take a while on slow links.
            self.cfg.set("timeout", 120)
            self.cfg.set("accesslog", "-")

        def load(self):
            return app

    print(f"posterq api: serving on http://{args.host}:{args.port} (gunicorn, {args.workers} workers x "
          f"{args.threads} threads)")
    Server().run()
    return 0
