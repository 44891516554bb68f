"""`posterq worker [--concurrency N] [--hostname NAME]`: a Celery worker with posterq's defaults."""

import argparse
import os
import socket

from posterq.cli import EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `posterq worker`'s arguments."""
    parser.add_argument("--concurrency", "-c", type=int, default=0, metavar="N",
                        help="processes, one interpreter each (default: one per core)")
    parser.add_argument("--hostname", "-n", metavar="NAME",
                        help="worker name, unique per worker (default: posterq-<pid>@<host>)")
    parser.add_argument("--loglevel", "-l", default="INFO", help="Celery log level (default INFO)")


def run(args: argparse.Namespace) -> int:
    """Start the worker; returns when it stops."""
    from posterq.config import available_cores
    from posterq.worker import runtime
    from posterq.worker.celery_app import app

    concurrency = args.concurrency or available_cores()
    hostname = args.hostname or f"posterq-{os.getpid()}@{socket.gethostname()}"
    runtime.set_given_name(hostname)
    argv = ["worker", "--loglevel", args.loglevel, "--hostname", hostname,
            "--concurrency", str(concurrency), "--pool", "prefork",
            "--queues", app.conf.task_default_queue,
            # No broadcast chatter at start-up: posterq workers share nothing but Redis lists.
            "--without-mingle", "--without-gossip"]
    app.worker_main(argv)
    return EXIT_OK
