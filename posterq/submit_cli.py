"""`posterq submit DIR [--api URL] [--out FILE]`: send a folder to a posterq service, wait, write results.

    posterq submit posters/ --api http://127.0.0.1:8000 --out genres.csv
    POSTERQ_API_KEY=... posterq submit posters/ --api https://posterq.example   # a service with keys

The folder is uploaded as one job, or several when it is over the server's limits (posters per
job, request size); the results file has the rows `posterq label` writes, in the same order.
"""

import argparse
import os
import shlex
import sys
import time
import uuid
from pathlib import Path

from posterq.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from posterq.lookup_cli import add_api_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `posterq submit`'s arguments."""
    parser.add_argument("directory", metavar="DIR", help="folder of posters (searched recursively)")
    add_api_argument(parser)
    parser.add_argument("--out", default="genres.csv", metavar="FILE",
                        help="result file (default: genres.csv), replaced only when a poster was "
                             "labelled; otherwise, and on Ctrl-C, the rows go to FILE.partial")
    parser.add_argument("--format", choices=("csv", "jsonl"), help="result format (default: from --out)")
    parser.add_argument("--name", metavar="NAME",
                        help="the jobs' name, shown by `posterq jobs list` and found by its --name")
    parser.add_argument("--top-k", type=int, metavar="K",
                        help="most genres per poster (default: the model's)")
    parser.add_argument("--poll", type=float, default=1.0, metavar="S",
                        help="most seconds one status request waits; a finished job answers at once")
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.add_argument("--no-reuse", action="store_true",
                        help="classify every poster again, even one the service's model labelled before "
                             "(by default such a poster gets its stored result, marked reused)")
    parser.add_argument("--api-key", metavar="KEY",
                        help="the service's API key, where it has keys (default: $POSTERQ_API_KEY, "
                             "which other users of this machine cannot read in the process list)")


def run(args: argparse.Namespace) -> int:
    """Submit, wait with a progress bar, write the results; return the exit code."""
    from tqdm import tqdm

    from posterq.chunking import plan_chunks
    from posterq.client import API_KEY_ENV, ServiceClient, relative_name
    from posterq.exceptions import PosterqError
    from posterq.files import iter_files
    from posterq.results import aside_paths, format_for, kept, open_writer, scored_genres

    root, out = Path(args.directory), Path(args.out)
    if not root.is_dir():
        print(f"posterq submit: error: {root} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    try:
        result_format = args.format or format_for(out)
    except ValueError as exc:
        print(f"posterq submit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    client = ServiceClient(args.api, api_key=args.api_key or os.environ.get(API_KEY_ENV))
    started = time.monotonic()
    try:
        # The result file and the side files of earlier incomplete runs are never posters themselves.
        paths = iter_files(root, exclude=[out, *aside_paths(out)])
        if not paths:
            print(f"posterq submit: error: no poster files in {root}: nothing sent, {out} left as it was",
                  file=sys.stderr)
            return EXIT_USAGE
        limits = client.limits()
        local_errors = {}
        sizes = []
        for position, path in enumerate(paths):
            size = path.stat().st_size
            if size > limits["max_file_bytes"]:
                # Not worth uploading: the server would refuse it the same way.
                local_errors[position] = {"code": "too_large", "message":
                                          f"{size} bytes is over the limit of {limits['max_file_bytes']}"}
            sizes.append(0 if position in local_errors else size)
        sendable = [i for i in range(len(paths)) if i not in local_errors]
        chunks = plan_chunks([sizes[i] for i in sendable], limits["max_posters_per_job"],
                             limits["max_request_bytes"])
        bar = tqdm(total=len(paths), unit="poster", disable=args.no_progress, desc="posterq submit")
        bar.update(len(local_errors))
        jobs = []

        def progress(finished: int) -> None:
            bar.update(finished + len(local_errors) - bar.n)

        try:
            for chunk in chunks:
                indices = [sendable[i] for i in chunk]
                files = [(relative_name(paths[i], root), paths[i].read_bytes()) for i in indices]
                # One key per chunk: every retry of this upload (a dropped connection, a restarted
                # API) gets the one job it made, never a second.
                job = client.submit(files, args.top_k, idempotency_key=uuid.uuid4().hex, name=args.name,
                                    reuse=not args.no_reuse)
                jobs.append((job, indices))
                bar.write(f"job {job['id']}: {len(indices)} posters accepted", file=sys.stderr)
            finals = client.wait([job["id"] for job, _ in jobs], poll=args.poll, on_progress=progress)
        except KeyboardInterrupt:
            bar.close()
            return _interrupted(client, args, jobs, paths, root, out, result_format, limits, local_errors)
        bar.close()
        rows = {}
        for (job, indices), final in zip(jobs, finals, strict=True):
            by_name = {row["path"]: row for row in client.results(job["id"])}
            for i in indices:
                row = by_name.get(relative_name(paths[i], root))
                rows[i] = row or {"genres": [], "scores": {}, "error": {
                    "code": final["status"], "message": f"job {job['id']} ended {final['status']}"}}
        for i, error in local_errors.items():
            rows[i] = {"genres": [], "scores": {}, "error": error}
        # The job view does not repeat its model's genres: GET /limits has them, in model order.
        genres = scored_genres(list(rows.values()), limits["genres"])
        writer = None  # a Ctrl-C may come before the result file is open
        try:
            # `out` is replaced only if a poster was labelled (results.open_writer); else it stays
            # as it was and the rows go to a side file.
            with open_writer(out, result_format, genres) as writer:
                for i, path in enumerate(paths):
                    writer.write({**rows[i], "path": relative_name(path, root)})
        except KeyboardInterrupt:
            print(f"\ninterrupted: {kept(out, writer)}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except OSError as exc:  # as posterq label says it: the jobs' results stay in the service
            print(f"posterq submit: error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    except PosterqError as exc:
        print(f"posterq submit: error: {exc.message} ({exc.code})", file=sys.stderr)
        if exc.code in ("missing_api_key", "invalid_api_key"):
            print(f"posterq submit: set {API_KEY_ENV} (or pass --api-key) to a key of the service",
                  file=sys.stderr)
        return EXIT_FAILED
    seconds = time.monotonic() - started
    rate = len(paths) / seconds if seconds > 0 else 0.0
    print(f"labelled {len(paths)} posters in {seconds:.1f} s ({rate:.1f} posters/s) with {len(jobs)} "
          f"job(s): {writer.labelled} ok, {writer.count - writer.labelled} errors"
          + (f"\nwrote {out}" if writer.replaced else ""))
    if not writer.replaced:
        # As the service calls a job with no poster labelled `failed`.
        print(f"posterq submit: no poster could be labelled: {kept(out, writer)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _interrupted(client, args, jobs, paths, root, out, result_format, limits, local_errors) -> int:
    """Ctrl-C: keep the finished rows beside `out`, say the jobs go on, and how to fetch or cancel them."""
    from posterq.client import relative_name
    from posterq.exceptions import PosterqError
    from posterq.results import kept, open_writer

    finished = {}
    try:
        for job, _ in jobs:
            for row in client.results(job["id"]):
                finished[row["path"]] = row
    except PosterqError as exc:
        print(f"posterq submit: could not fetch the finished rows: {exc.message}", file=sys.stderr)
    # Incomplete by definition: `out` stays as it was, the finished rows go to a side file.
    with open_writer(out, result_format, limits["genres"], partial=True) as writer:
        for i, path in enumerate(paths):
            name = relative_name(path, root)
            row = ({"genres": [], "scores": {}, "error": local_errors[i]} if i in local_errors
                   else finished.get(name))
            if row is not None:
                writer.write({**row, "path": name})
    api = shlex.quote(client.api_url)
    print(f"\ninterrupted: {kept(out, writer)}", file=sys.stderr)
    for job, _ in jobs:
        print(f"job {job['id']} goes on in the service; fetch it with\n"
              f"  posterq jobs download {job['id']} --api {api} --out {shlex.quote(str(out))}\n"
              f"or cancel it with\n  posterq jobs cancel {job['id']} --api {api}", file=sys.stderr)
    if not jobs:
        print("no job was accepted yet: nothing goes on in the service", file=sys.stderr)
    return EXIT_INTERRUPTED

