"""A request's fingerprint: what an Idempotency-Key is bound to (draft-ietf-httpapi-idempotency-key-header).

The same key with another request answers 422 idempotency_key_reused instead of replaying a job
that was not this request's. The fingerprint is the sha256 of the canonical request: method,
path, query arguments, media type and the body as the API reads it (a JSON body parsed, with its
keys sorted; a multipart body's fields and each file's field, name and sha256; any other body's
bytes), so that a retry sent with another boundary or key order is still the same request.
"""

import hashlib
import json

from flask import Request

# Bytes hashed per read of an uploaded file: an upload is never held twice for its digest.
_READ = 1 << 16


def of_request(request: Request) -> str:
    """The sha256 hex digest of the request's canonical form (reads the body; uploads are rewound)."""
    digest = hashlib.sha256()

    def part(*values: object) -> None:
        # Length-prefixed, so that no two different sequences of values hash alike.
        for value in values:
            data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")
            digest.update(b"%d:" % len(data) + data)

    part(request.method, request.path, request.mimetype)
    for name, value in sorted(request.args.items(multi=True)):
        part("arg", name, value)
    if request.mimetype == "application/json":
        try:
            body = request.get_json(silent=True)
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":")) if body is not None else None
        except RecursionError:  # nested past the parser's stack: submit() refuses it as bad_json
            canonical = None
        part("json", canonical if canonical is not None else request.get_data())
    elif request.mimetype == "multipart/form-data":
        for name, value in sorted(request.form.items(multi=True)):
            part("field", name, value)
        files = sorted(((name, index, upload) for name in request.files
                        for index, upload in enumerate(request.files.getlist(name))),
                       key=lambda entry: entry[:2])
        for name, index, upload in files:
            part("file", name, index, upload.filename or "", _file_digest(upload.stream))
    else:
        # Cached: the submission reads the same bytes once more.
        part("body", hashlib.sha256(request.get_data()).hexdigest())
    return digest.hexdigest()


def _file_digest(stream) -> str:
    file_digest = hashlib.sha256()
    for block in iter(lambda: stream.read(_READ), b""):
        file_digest.update(block)
    stream.seek(0)
    return file_digest.hexdigest()
