"""`posterq jobs`: find your jobs on a posterq service again: list, show, wait for, cancel, download.

    posterq jobs list --api http://127.0.0.1:8000 [--status running] [--name NAME]
    posterq jobs show JOB_ID --api ...
    posterq jobs wait JOB_ID --api ...
    posterq jobs download JOB_ID --api ... --out genres.csv      # or genres.jsonl
    posterq jobs cancel JOB_ID --api ...
    posterq jobs retry JOB_ID --api ... [--wait]                 # a new job of its failed posters
    posterq jobs rerun JOB_ID --model name@version --api ... [--wait]

With API keys (POSTERQ_API_KEY, or --api-key) a key sees and handles only its own jobs.
"""

import argparse
import os
import sys
from pathlib import Path

from posterq.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from posterq.jobs.keys import JobStatus

#: The API when --api is not given.
DEFAULT_API = "http://127.0.0.1:8000"
API_ENV = "POSTERQ_API"


def add_api_argument(parser: argparse.ArgumentParser) -> None:
    """Add --api, the service's root URL: every command that talks to the service takes it alike."""
    parser.add_argument("--api", default=os.environ.get(API_ENV, DEFAULT_API), metavar="URL",
                        help=f"the service's root URL (default: ${API_ENV}, else {DEFAULT_API})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `posterq jobs`'s subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    add_api_argument(common)
    common.add_argument("--api-key", metavar="KEY", help="the service's API key (default: $POSTERQ_API_KEY)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[common], help="your jobs, newest first")
    listing.add_argument("--status", choices=[status.value for status in JobStatus])
    listing.add_argument("--name", metavar="NAME", help="only the jobs whose name contains NAME")
    listing.add_argument("--limit", type=int, default=20, help="most jobs shown (default 20)")
    for name, what in (("show", "a job's status and counts"), ("wait", "wait until a job is final"),
                       ("cancel", "cancel what of a job has not run (its results stay)")):
        actions.add_parser(name, parents=[common], help=what).add_argument("job_id", metavar="JOB_ID")
    for name, what in (("retry", "a new job of a final job's failed posters"),
                       ("rerun", "a new job of a final job's posters, labelled by another model")):
        repeat = actions.add_parser(name, parents=[common], help=what)
        repeat.add_argument("job_id", metavar="JOB_ID")
        repeat.add_argument("--model", required=name == "rerun", help="name@version, or a name (GET /models)")
        repeat.add_argument("--wait", action="store_true", help="wait until the new job is final")
    download = actions.add_parser("download", parents=[common], help="a job's results into a file")
    download.add_argument("job_id", metavar="JOB_ID")
    download.add_argument("--out", required=True, metavar="FILE", help="result file (.csv or .jsonl)")
    download.add_argument("--format", choices=("csv", "jsonl"), help="result format (default: from --out)")


def run(args: argparse.Namespace) -> int:
    """Run one action; return the exit code."""
    from posterq.client import API_KEY_ENV, ServiceClient
    from posterq.exceptions import PosterqError

    client = ServiceClient(args.api, api_key=args.api_key or os.environ.get(API_KEY_ENV))
    try:
        if args.action == "list":
            return _list(client, args)
        if args.action == "download":
            return _download(client, args)
        if args.action in ("retry", "rerun"):
            return _repeat(client, args)
        job = {"show": client.job, "cancel": client.cancel,
               "wait": lambda job_id: client.wait([job_id], poll=10)[0]}[args.action](args.job_id)
        print(describe(job))
        return EXIT_OK
    except PosterqError as exc:
        print(f"posterq jobs {args.action}: error: {exc.message} ({exc.code})", file=sys.stderr)
        return EXIT_FAILED


def describe(job: dict) -> str:
    """One line about a job: id, status, counts, source, when, name; a second when its output file failed.

    The source is the folder of a directory job, below its data root (upload, zip or analysis
    otherwise); the name
    comes last, as the client gave it (it may hold spaces), "-" for none.
    """
    from datetime import datetime

    created = datetime.fromtimestamp(job["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
    listed = "" if job.get("enumerated", True) else " (folder still being listed)"
    # A job whose model no live worker holds waits for one to start: say so, or it looks stuck.
    waiting = f"  waiting for model {job['requested_model']}" if job.get("waiting_for_model") else ""
    source = job.get("folder") or job["source"]
    line = (f"{job['id']}  {job['status']:<9}  {job['done'] + job['failed']}/{job['total']} posters{listed}, "
            f"{job['failed']} failed  {source}  {created}  {job.get('name') or '-'}{waiting}")
    # A job that failed as a whole (its folder's listing gave up) says why on a line of its own.
    failed = f"\n  failed: {job['error']['message']} ({job['error']['code']})" if job.get("error") else ""
    return line + failed + _output_line(job)


def _output_line(job: dict) -> str:
    # A job whose results are in but whose output file is not must never read as a plain success.
    error, status = job.get("output_error"), job.get("output_status")
    if status == "written":
        return f"  output written: {job['output']}"
    if not error:
        return f"  output {status}: {job['output']}" if status else ""
    state = "NOT written" if status == "failed" else "not written yet (to be tried again)"
    return f"\n  output {state}: {job['output']}: {error['message']} ({error['code']})"


def _list(client, args: argparse.Namespace) -> int:
    page = client.jobs(status=args.status, limit=args.limit, name=args.name)
    for job in page["jobs"]:
        print(describe(job))
    if not page["jobs"]:
        print("no jobs", file=sys.stderr)
    elif page["next_offset"] is not None:
        print(f"(more: --limit {args.limit * 2})", file=sys.stderr)
    return EXIT_OK


def _repeat(client, args: argparse.Namespace) -> int:
    # The new job's id alone on stdout, for scripts; with --wait, the job once final on stderr.
    job = client.repeat(args.job_id, args.action, args.model)
    print(job["id"])
    if args.wait:
        job = client.wait([job["id"]], poll=10)[0]
        print(describe(job), file=sys.stderr)
        return EXIT_OK if job["status"] == JobStatus.DONE else EXIT_FAILED
    return EXIT_OK


def _download(client, args: argparse.Namespace) -> int:
    from posterq.results import create_new, format_for, partial_path

    out = Path(args.out)
    try:
        fmt = args.format or format_for(out)
    except ValueError as exc:
        print(f"posterq jobs download: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    partial = partial_path(out)
    try:
        # Renamed over --out only once complete: a failed download leaves an existing file whole.
        with create_new(partial, "wb") as stream:
            copied = client.download(args.job_id, stream, fmt)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    job = client.job(args.job_id)
    # Every row is in once the job ran to its end; a cancelled or running job has the rows so far.
    complete = JobStatus(job["status"]).final and job["status"] != JobStatus.CANCELLED
    state = "" if complete else f" (the job is {job['status']}: rows so far)"
    print(f"wrote {out}: {copied} bytes, {job['done'] + job['failed']} of {job['total']} posters{state}")
    return EXIT_OK
