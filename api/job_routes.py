"""The jobs blueprint: submit, poll, download, cancel."""

import logging
import re
from functools import partial

from flask import Blueprint, Response, jsonify, request

from posterq.api import auth, context, fingerprint, intake, model_routes
from posterq.api.backpressure import admission_quota, refuse_when_full
from posterq.api.dispatch import enqueue, enqueue_enumeration
from posterq.api.exceptions import ApiError, BadRequest, NotFound
from posterq.api.urls import public_url_for
from posterq.chunking import PART_OVERHEAD, REQUEST_SLACK
from posterq.genres import GENRES
from posterq.jobs.export import export
from posterq.jobs.keys import JobStatus, ResultStatus, is_job_id
from posterq.jobs.reuse import identity_of
from posterq.jobs.view_fields import shown_folder

log = logging.getLogger(__name__)
blueprint = Blueprint("jobs", __name__)

DEFAULT_PAGE, MAX_PAGE = 100, 1000
#: The largest offset taken: far beyond any job's posters, and within the database's 64-bit integers.
MAX_OFFSET = 10**15
# The longest GET /jobs/<id>?wait=S: long enough to spare clients a polling loop, short enough
# for proxies' idle timeouts.
MAX_WAIT_SECONDS = 30
_CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


#: The longest Idempotency-Key taken (Stripe's limit): a UUID, or a client's own name for a chunk.
MAX_IDEMPOTENCY_KEY = 255
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces


@blueprint.post("/jobs")
def submit():
    """Take a job: multipart `files` (or one `zip`), a raw zip body, or JSON {"directory", "output"?, ...}.

    With an Idempotency-Key header, the same key from the same API key within a day answers with
    the job the first submission made instead of making another: a client may retry safely. The
    same key with another request (posterq.api.fingerprint) answers 422 idempotency_key_reused.
    """
    settings = context.settings()
    key = idempotency_key()
    digest = fingerprint.of_request(request) if key is not None else None
    if key is not None:
        # Before the queue is asked: a retry of an accepted job is answered as the first try was,
        # full queue or not.
        replayed = context.store().jobs.replay(auth.owner(), key, digest)
        if replayed is not None:
            log.info("job %s: submission replayed for its Idempotency-Key", replayed["id"])
            return accepted(replayed, replayed=True)
    # Before the body is parsed: a full queue refuses at the cost of one LLEN.
    refuse_when_full(context.store(), auth.owner())
    mimetype = request.mimetype
    if mimetype == "application/json":
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # nested deeper than the parser's stack: malformed, not a server fault
            body = None
        if not isinstance(body, dict):
            raise BadRequest("the body is not a JSON object", "bad_json")
        top_k = intake.parse_top_k(body.get("top_k", request.args.get("top_k")))
        name = intake.parse_name(body.get("name", request.args.get("name")))
        pool = pool_of(body.get("model", request.args.get("model")),
                       body.get("wait_for_model", request.args.get("wait_for_model")))
        reuse = intake.parse_reuse(body.get("reuse", request.args.get("reuse")), settings)
        directory, recursive = intake.from_directory(body, settings, auth.data_roots())
        output, overwrite = intake.output_of(body, settings, auth.output_roots(), auth.may_overwrite())
        job = context.store(pool).jobs.create_directory(
            directory, recursive, top_k, owner=auth.owner(), weight=auth.weight(), output=output,
            enumerate_job=partial(enqueue_enumeration, pool=pool), idempotency_key=key, request_digest=digest,
            quota=admission_quota(context.store(), auth.owner()), overwrite=overwrite, name=name,
            folder=shown_folder(directory, settings.data_roots), reuse=reuse)
        return accepted(job)
    elif mimetype in ("application/zip", "application/x-zip-compressed"):
        top_k = intake.parse_top_k(request.args.get("top_k"))
        name = intake.parse_name(request.args.get("name"))
        pool = pool_of(request.args.get("model"), request.args.get("wait_for_model"))
        reuse = intake.parse_reuse(request.args.get("reuse"), settings)
        (items, blobs), source = intake.from_zip(request.get_data(cache=False), settings), "zip"
    elif mimetype == "multipart/form-data":
        top_k = intake.parse_top_k(request.form.get("top_k", request.args.get("top_k")))
        name = intake.parse_name(request.form.get("name", request.args.get("name")))
        pool = pool_of(request.form.get("model", request.args.get("model")),
                       request.form.get("wait_for_model", request.args.get("wait_for_model")))
        reuse = intake.parse_reuse(request.form.get("reuse", request.args.get("reuse")), settings)
        archives, files = request.files.getlist("zip"), request.files.getlist("files")
        if archives and files or len(archives) > 1:
            raise BadRequest("send either `files` or one `zip`, not both", "bad_upload")
        if archives:
            (items, blobs), source = intake.from_zip(archives[0].read(), settings), "zip"
        elif files:
            (items, blobs), source = intake.from_uploads(files, settings), "upload"
        else:
            raise BadRequest("a multipart job needs `files` fields or a `zip` field", "no_posters")
    else:
        raise BadRequest("send multipart/form-data, application/zip or application/json",
                         "unsupported_media_type", 415)
    blobs = blobs or [None] * len(items)
    # The model the job's posters would be classified by, known from the workers' heartbeats: the
    # results it stored are reused (posterq.jobs.reuse); none known, none reused.
    identity = identity_of(context.store().stats.workers(), pool) if reuse else None
    # All or nothing: if the tokens cannot be sent, the job's record, bytes and refs are removed.
    job = context.store(pool).jobs.create(source, items, blobs, top_k, owner=auth.owner(),
                                          enqueue=partial(enqueue, pool=pool), weight=auth.weight(),
                                          idempotency_key=key, request_digest=digest,
                                          quota=admission_quota(context.store(), auth.owner()), name=name,
                                          reuse=reuse, identity=identity)
    log.info("job %s: %d posters from %s%s", job["id"], job["total"], source, f" for {pool}" if pool else "")
    return accepted(job)


def pool_of(model, wait_for_model) -> str:
    """The pool of the model a submission names ("" for none), checked.

    Its posters count against the same limits as any other pool's (posterq.jobs.admission),
    checked before the body was read and again as they are admitted.
    """
    return model_routes.requested_pool(model, model_routes.parse_wait(wait_for_model))


def accepted(job: dict, replayed: bool = False):
    """202 with the job, its URL and where its results download from."""
    response = jsonify(_with_urls(job))
    response.status_code = 202
    response.headers["Location"] = response.json["url"]
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _with_urls(job: dict, held: dict | None = None) -> dict:
    """The job with its URLs and whether it waits for a model no live worker holds (waiting_for_model)."""
    return {**job, "url": public_url_for("jobs.get_job", job_id=job["id"]),
            "results_url": public_url_for("jobs.download", job_id=job["id"]),
            "waiting_for_model": model_routes.waiting_for_model(job, held)}


def idempotency_key() -> str | None:
    """The request's Idempotency-Key header, checked (None when it has none)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise BadRequest(f"an Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters, "
                         "no spaces", "bad_idempotency_key")
    return key


@blueprint.get("/jobs")
def list_jobs():
    """The caller's jobs (every job where the service has no API keys), newest first, paged.

    ?status= keeps one status, ?name= the jobs whose name contains it (case-sensitive); ?offset=
    and ?limit= page (next_offset says where the next page starts, null on the last one).
    """
    offset = number_arg("offset", 0, 0, MAX_OFFSET)
    limit = number_arg("limit", DEFAULT_PAGE, 1, MAX_PAGE)
    status = request.args.get("status")
    if status is not None and status not in {item.value for item in JobStatus}:
        raise BadRequest(f"status must be one of {', '.join(item.value for item in JobStatus)}", "bad_status")
    name = intake.parse_name(request.args.get("name"))
    owner = auth.owner() if auth.keys_enabled() else None
    jobs = context.store().jobs.page(owner, status, offset, limit + 1, name)
    # One read of the workers' heartbeats for the page, and none for a page without a named model.
    held = model_routes.held() if any(job.get("requested_model") for job in jobs) else {}
    return jsonify({"jobs": [_with_urls(job, held) for job in jobs[:limit]], "offset": offset, "limit": limit,
                    "next_offset": offset + limit if len(jobs) > limit else None})


def _check_visible(job_id: str) -> None:
    """404 unless job_id names a job this request may see; its shape is checked before it touches a key."""
    if not is_job_id(job_id):
        raise NotFound("no such job: a job id is 32 lowercase hexadecimal digits", "job_not_found")
    owner = context.store().jobs.owner(job_id)
    # Another key's job answers as one that does not exist would: the answer gives nothing away.
    if owner is None or not auth.may_see(owner):
        raise NotFound(f"no job {job_id} (it may have expired)", "job_not_found")


def job_or_404(job_id: str) -> dict:
    """The job the caller may see, or 404 (another key's job is as unknown as none)."""
    _check_visible(job_id)
    job = context.store().jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id} (it may have expired)", "job_not_found")
    return job


def number_arg(name: str, default, low, high=None, kind=int, code: str = "bad_paging"):
    """A query argument of `kind` between low and high (inclusive), or a 400 with `code`."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = low - 1
    # Written so that nan (float("nan") compares false to everything) is refused too.
    if not (value >= low and (high is None or value <= high)):
        what = "a whole number" if kind is int else "a number"
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"{name} must be {what} {bound}", code)
    return value


@blueprint.get("/jobs/<job_id>")
def get_job(job_id: str):
    """A job's status, counts, progress, timings, model, and one page of its results.

    With ?wait=S the answer comes as soon as the job is final, or after S seconds as it stands.
    ?limit=0 answers the status alone (results empty, next_offset null): a poll reads no result.
    """
    offset = number_arg("offset", 0, 0, MAX_OFFSET)
    limit = number_arg("limit", DEFAULT_PAGE, 0, MAX_PAGE)
    wait = number_arg("wait", 0.0, 0, MAX_WAIT_SECONDS, float, "bad_wait")
    _check_visible(job_id)
    job = context.store().jobs.wait(job_id, wait) if wait else None
    job = job or job_or_404(job_id)
    results = context.store().jobs.results(job_id, offset, limit) if limit else []
    next_offset = offset + limit if offset + limit < job["total"] and results else None
    return jsonify({**job, "waiting_for_model": model_routes.waiting_for_model(job),
                    "offset": offset, "limit": limit, "next_offset": next_offset,
                    "results": [_public(result) for result in results]})


def _public(result: dict) -> dict:
    if result.get("status") == ResultStatus.PENDING.value:
        return result
    status = ResultStatus.ERROR if result["error"] else ResultStatus.OK
    return {"index": result["index"], "name": result["name"], "status": status.value,
            "genres": result["genres"], "scores": result["scores"], "error": result["error"],
            "worker": result.get("worker"), "model_version": result.get("model_version"),
            "reused": bool(result.get("reused"))}


@blueprint.get("/jobs/<job_id>/results")
def download(job_id: str):
    """Every finished result as CSV or JSON Lines: `posterq label`'s rows, with their model_version."""
    job_or_404(job_id)
    fmt = request.args.get("format", "csv")
    if fmt not in _CONTENT_TYPES:
        raise BadRequest("format must be csv or jsonl", "bad_format")
    # The ledger's row, not the view: it has the model's genres (the CSV's score columns).
    row = context.store().ledger.get(job_id) or {}
    # The rows come from a server-side cursor a page at a time (the store is read here, in the request).
    pieces = export(row, context.store().ledger.stream(job_id), fmt)
    headers = {"Content-Disposition": f'attachment; filename="{job_id}.{fmt}"'}
    return Response(pieces, mimetype=_CONTENT_TYPES[fmt].split(";")[0], headers=headers)


@blueprint.delete("/jobs/<job_id>")
def cancel(job_id: str):
    """Cancel what has not run: the job's waiting posters and the rest of its folder; results stay."""
    job = job_or_404(job_id)
    if JobStatus(job["status"]).final:
        raise ApiError(f"job {job_id} is {job['status']} already: nothing is left to cancel, and its "
                       "results stay", "job_finished", 409)
    job = context.store().jobs.cancel(job_id)
    if job is None:
        raise NotFound(f"no job {job_id} (it may have expired)", "job_not_found")
    pool = job.get("requested_model") or ""
    if pool and context.store(pool).forget_pool():
        context.broker(pool).forget_queue()  # its last job: nothing of the pool stays in Redis
    return jsonify({**job, "waiting_for_model": model_routes.waiting_for_model(job)})


@blueprint.get("/limits")
def limits():
    """The limits a client must respect (posterq submit splits a folder by them)."""
    settings = context.settings()
    # A job must also fit the caller's part of the queue (posterq.jobs.admission), or it would
    # never be admitted: posterq submit splits a folder by this number.
    most = min(settings.max_posters_per_job, admission_quota(context.store(), auth.owner()).most)
    return jsonify({"max_request_bytes": settings.max_request_bytes,
                    "max_posters_per_job": most,
                    "max_file_bytes": settings.max_file_bytes,
                    # How a client counts a request's bytes when it cuts a pick into jobs (the page does).
                    "part_overhead_bytes": PART_OVERHEAD, "request_overhead_bytes": REQUEST_SLACK,
                    "batch_size": settings.batch_size, "genres": list(GENRES)})
