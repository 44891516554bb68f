"""The original project's endpoint: one poster in, its genres out, through the same queue as any job.

    curl -s --data-binary @<(base64 -w0 heat.jpg) http://127.0.0.1:8000/analysis/
    -> {"result": ["Drama", "Crime", "Action"], "scores": {...}, "model": {...}, "job": "..."}

The body is the base64 text of an image (what the original page sent, with or without a
`data:image/...;base64,` prefix), the raw image bytes, or a multipart `file`. The poster becomes a
one-poster job; the request waits for its result on the job's done list (no polling) and
answers 504 when POSTERQ_ANALYSIS_TIMEOUT passes first.
"""

import base64
import binascii
import logging
import re

from flask import Blueprint, jsonify, request

from posterq.api import auth, context, intake
from posterq.api.backpressure import admission_quota, refuse_when_full
from posterq.api.dispatch import enqueue
from posterq.api.exceptions import ApiError, BadRequest, TooLarge
from posterq.exceptions import ImageError
from posterq.imaging import identify
from posterq.jobs.keys import ItemKind, JobStatus, Lane

log = logging.getLogger(__name__)
blueprint = Blueprint("analysis", __name__)

# Base64 text as browsers and `base64` write it: the alphabet (standard or URL-safe), padding,
# and line breaks. Image files themselves never consist of these bytes only.
_BASE64 = re.compile(rb"[A-Za-z0-9+/_\-=\s]+")
_DATA_URL = re.compile(rb"data:[\w.+/-]*(;[\w=.+-]*)*;base64,", re.IGNORECASE)


@blueprint.post("/analysis/")
def analyse():
    """Classify one poster through the queue and answer with its genres, best first."""
    settings = context.settings()
    refuse_when_full(context.store(), auth.owner())  # a poster that would wait minutes: Retry-After
    name, data = _poster()
    if not data:
        raise BadRequest("send an image: its base64 text, its bytes, or a multipart `file`", "no_image")
    if len(data) > settings.max_file_bytes:
        raise TooLarge(f"{len(data)} bytes is over the limit of {settings.max_file_bytes} per poster")
    top_k = intake.parse_top_k(request.args.get("top_k"))
    try:
        identify(data)  # text or a non-poster format is refused now, not after a trip to a worker
    except ImageError as exc:
        raise BadRequest(exc.message, exc.code) from None
    store = context.store()
    job = store.jobs.create("analysis", [{"name": name, "kind": ItemKind.UPLOAD.value}], [data], top_k,
                            owner=auth.owner(), enqueue=enqueue, lane=Lane.INTERACTIVE, weight=auth.weight(),
                            quota=admission_quota(store, auth.owner()))
    job_id = job["id"]
    job = store.jobs.wait(job_id, settings.analysis_timeout)
    if job is None or not JobStatus(job["status"]).final:
        store.jobs.cancel(job_id)  # nobody will read the answer: do not spend a worker on it
        raise ApiError(f"no worker classified the poster within {settings.analysis_timeout:g} s; "
                       "see /readyz for live workers", "timeout", 504)
    result = store.jobs.results(job_id, 0, 1)[0]
    if result.get("error"):
        error = result["error"]
        raise ApiError(error["message"], error["code"], 413 if error["code"] == "too_large" else 400)
    return jsonify({"result": result["genres"], "scores": result["scores"], "model": job["model"],
                    "job": job_id})


@blueprint.get("/analysis/")
def hint():
    """The original project's hint for a GET."""
    return jsonify({"result": "Send post request"})


def _poster() -> tuple[str, bytes]:
    """The poster's name and bytes, from whichever of the three body forms was sent."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequest("a multipart request needs a `file` field", "no_image")
        return upload.filename or "poster", upload.read()
    body = request.get_data(cache=False)
    text = _DATA_URL.sub(b"", body.strip(), count=1)
    if text and _BASE64.fullmatch(text):
        try:
            return "poster", base64.b64decode(_pad(re.sub(rb"\s+", b"", text)), altchars=_altchars(text),
                                              validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: the bytes themselves are the poster (the worker judges them)
    return "poster", body


def _pad(text: bytes) -> bytes:
    return text + b"=" * (-len(text) % 4)


def _altchars(text: bytes) -> bytes | None:
    # URL-safe base64 spells + and / as - and _.
    return b"-_" if (b"-" in text or b"_" in text) else None
