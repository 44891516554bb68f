"""Repeat a final job as a new one: its failed posters (retry), or all of them with another model (rerun)."""

import logging
from functools import partial

from flask import Blueprint, request

from posterq.api import auth, context, fingerprint, intake
from posterq.api.backpressure import admission_quota, refuse_when_full
from posterq.api.dispatch import enqueue
from posterq.api.exceptions import ApiError, BadRequest
from posterq.api.job_routes import accepted, idempotency_key, job_or_404, pool_of
from posterq.exceptions import PostersGone
from posterq.jobs.keys import JobStatus

log = logging.getLogger(__name__)
blueprint = Blueprint("repeat", __name__)


@blueprint.post("/jobs/<job_id>/retry")
def retry(job_id: str):
    """A new job of a final job's failed posters: same top_k and model unless the body names others."""
    return _repeat(job_id, "retry_of", failed_only=True)


@blueprint.post("/jobs/<job_id>/rerun")
def rerun(job_id: str):
    """A new job of a final job's posters labelled by the model the body names ({"model": "name@version"})."""
    return _repeat(job_id, "rerun_of", failed_only=False)


def _repeat(job_id: str, link: str, failed_only: bool):
    body = _body()
    original = job_or_404(job_id)
    key = idempotency_key()
    digest = fingerprint.of_request(request) if key is not None else None
    if key is not None:
        replayed = context.store().jobs.replay(auth.owner(), key, digest)
        if replayed is not None:
            return accepted(replayed, replayed=True)
    if not JobStatus(original["status"]).final:
        raise ApiError(f"job {job_id} is {original['status']}: wait until it is final", "job_not_final", 409)
    if failed_only and not original["failed"]:
        raise ApiError(f"job {job_id} has no failed posters to retry", "no_failed_posters", 409)
    if not failed_only and not body.get("model"):
        raise BadRequest("a rerun names the model to label with: {\"model\": \"name@version\"}", "bad_model")
    refuse_when_full(context.store(), auth.owner())
    top_k = intake.parse_top_k(body["top_k"]) if "top_k" in body else original["top_k"]
    pool = pool_of(body.get("model", original["requested_model"]), body.get("wait_for_model"))
    jobs = context.store(pool).jobs
    try:
        job = jobs.repeat(original, link, failed_only, top_k=top_k, name=original.get("name"),
                          owner=auth.owner(), weight=auth.weight(),
                          enqueue=partial(enqueue, pool=pool), idempotency_key=key, request_digest=digest,
                          quota=admission_quota(context.store(), auth.owner()))
    except PostersGone as exc:
        raise ApiError(exc.message, exc.code, 410) from None
    log.info("job %s: %d posters of job %s (%s)%s", job["id"], job["total"], job_id, link,
             f" for {pool}" if pool else "")
    return accepted(job)


def _body() -> dict:
    """The request's JSON object; an empty body is an empty object."""
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True) if request.mimetype == "application/json" else None
    if not isinstance(body, dict):
        raise BadRequest("the body is not a JSON object", "bad_json")
    return body
