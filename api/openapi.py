"""The OpenAPI 3 document of the API, written by hand and held to the routes by a test."""

import copy

from flask import Blueprint, current_app, jsonify

from posterq import __version__
from posterq.api import auth
from posterq.api.urls import public_root
from posterq.jobs.keys import JobStatus, OutputStatus
from posterq.jobs.view_fields import MAX_NAME

blueprint = Blueprint("openapi", __name__)


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _busy() -> dict:
    return {**_error("The posters would pass the key's part of the queue (key_queue_full) or the queue's "
                     "limit, POSTERQ_MAX_QUEUED_POSTERS (queue_full): try again after Retry-After"),
            "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}}


def _job_id() -> dict:
    # Any other string names no job (404), whatever it is.
    return {"name": "job_id", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}


_JSON = "application/json"
# A job's name: free text on one line (no control characters), at most MAX_NAME characters.
_NAME = {"type": "string", "maxLength": MAX_NAME, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$"}


def _repeat(operation: str, summary: str, conflict: str, required: tuple = ()) -> dict:
    """A retry's or a rerun's operation: both make a new job of an old one's posters (api/rerun_routes.py)."""
    body = {"type": "object", "additionalProperties": False, "properties": {
        "model": {"type": "string", "minLength": 1}, "wait_for_model": {"type": "boolean", "default": False},
        "top_k": {"type": "integer", "minimum": 1, "maximum": 24}}}
    if required:
        body["required"] = list(required)
    return {
        "summary": summary, "operationId": operation,
        "parameters": [_job_id(), {"name": "Idempotency-Key", "in": "header", "required": False,
                                   "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                              "pattern": "^[\\x21-\\x7e]+$"}}],
        "requestBody": {"required": bool(required), "content": {_JSON: {"schema": body}}},
        "responses": {
            "202": {"description": "Accepted; the Location header is the new job's URL",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Job"}}}},
            "400": _error("Malformed body, bad model, top_k or Idempotency-Key"),
            "404": _error("No such job (or it expired, or it is another key's)"),
            "409": _error("The job is not final yet (job_not_final)" + (f", {conflict}" if conflict else "")
                          + "; no live worker holds the model named (model_unavailable); a submission "
                          "with this Idempotency-Key is still being made"),
            "410": _error("An upload's bytes are no longer kept (posters_gone): they go once its poster is "
                          "labelled"),
            "413": _error("More posters than a job may hold (too_many_posters)"),
            "422": _error("The Idempotency-Key was used for another request (idempotency_key_reused)"),
            "429": _busy(),
            "503": _error("Redis, the database or the queue unavailable; nothing of the new job was kept")}}

DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "posterq", "version": __version__,
             "description": "Label movie posters with genres: submit a job, poll it, download the results."},
    "paths": {
        "/jobs": {"get": {
            "summary": "The caller's jobs (every job without API keys), newest first, paged",
            "operationId": "listJobs",
            "parameters": [
                {"name": "status", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": [status.value for status in JobStatus]}},
                # Only the jobs whose name contains this text (case-sensitive, no wildcards).
                {"name": "name", "in": "query", "required": False, "schema": _NAME},
                {"name": "offset", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 0, "maximum": 10**15}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {
                "200": {"description": "One page of jobs", "content": {_JSON: {"schema": {
                    "type": "object", "properties": {
                        "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                        "offset": {"type": "integer"}, "limit": {"type": "integer"},
                        "next_offset": {"type": "integer", "nullable": True}}}}}},
                "400": _error("Bad status, name (bad_name), offset or limit")}},
            "post": {
            "summary": "Submit a job: uploaded posters, a zip of posters, or a folder under a data root",
            "operationId": "submitJob",
            "parameters": [{"name": "top_k", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 24}},
                           # A model a live worker holds (GET /models): name@version, or name for any version.
                           {"name": "model", "in": "query", "required": False,
                            "schema": {"type": "string", "minLength": 1}},
                           {"name": "wait_for_model", "in": "query", "required": False,
                            "schema": {"type": "boolean", "default": False}},
                           # false: classify every poster, even one its model labelled before (a zip body's;
                           # the other bodies may carry it too).
                           {"name": "reuse", "in": "query", "required": False,
                            "schema": {"type": "boolean", "default": True}},
                           # The job's name (a zip body's; the other bodies may carry it too).
                           {"name": "name", "in": "query", "required": False, "schema": _NAME},
                           # The same key from the same API key within a day answers with the same job;
                           # with another request it answers 422.
                           {"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                       "pattern": "^[\\x21-\\x7e]+$"}}],
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {"schema": {
                    "type": "object", "oneOf": [{"required": ["files"]}, {"required": ["zip"]}],
                    "properties": {
                    "files": {"type": "array", "minItems": 1,
                              "items": {"type": "string", "format": "binary"}},
                    "zip": {"type": "string", "format": "binary"},
                    "model": {"type": "string", "minLength": 1},
                    "wait_for_model": {"type": "boolean", "default": False},
                    "reuse": {"type": "boolean", "default": True},
                    "name": _NAME,
                    "top_k": {"type": "integer", "minimum": 1, "maximum": 24}}}},
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
                _JSON: {"schema": {
                    "type": "object", "required": ["directory"], "additionalProperties": False,
                    "properties": {
                    "directory": {"type": "string", "minLength": 1},
                    "recursive": {"type": "boolean", "default": True},
                    "output": {"type": "string", "minLength": 1},
                    # Replace an existing output file (refused with 409 output_exists otherwise).
                    "overwrite": {"type": "boolean", "default": False},
                    "model": {"type": "string", "minLength": 1},
                    "wait_for_model": {"type": "boolean", "default": False},
                    # Posters its model classified before get their stored result (marked reused).
                    "reuse": {"type": "boolean", "default": True},
                    "name": _NAME,
                    "top_k": {"type": "integer", "minimum": 1, "maximum": 24}}}},
            }},
            "responses": {
                "202": {"description": "Accepted; the Location header is the job's URL",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Job"}}}},
                "400": _error("Malformed request, bad zip, bad top_k or reuse (bad_reuse), a name over 200 "
                              "characters or with control characters (bad_name), no posters, or an output "
                              "name the file system cannot take (output_name_too_long, output_path_too_long, "
                              "output_is_directory, bad_output)"),
                "403": _error("Directory outside the data roots, or directory jobs disabled; output outside "
                              "the output roots; with API keys, a directory or output outside the key's own "
                              "roots (path_outside_key_roots), or overwrite without own output roots "
                              "(overwrite_not_allowed)"),
                "404": _error("Directory not found"),
                "413": _error("Over the request size or posters-per-job limit (too_many_posters: more "
                              "posters than the key's part of the queue, which GET /limits gives), "
                              "or a zip whose members "
                              "hold more than the request limit"),
                "409": _error("The output file exists and overwrite is not true (output_exists); a "
                              "submission with this Idempotency-Key is still being made (Retry-After), or "
                              "no live worker holds the model named (model_unavailable; error.held lists "
                              "the models held), or wait_for_model names a model no worker announced "
                              "lately nor the operator listed (unknown_model)"),
                "415": _error("Unsupported content type"),
                "422": _error("The Idempotency-Key was used for another request (idempotency_key_reused): "
                              "a new submission needs a new key"),
                "429": _busy(),
                "503": _error("Redis, the database or the queue unavailable, or Redis too full for new work "
                              "(redis_full); nothing of the job was kept"),
            }}},
        "/jobs/{job_id}": {
            "get": {
                "summary": "A job's status, counts, progress, timings, model and a page of results",
                "operationId": "getJob",
                "parameters": [
                    _job_id(),
                    {"name": "offset", "in": "query",
                     "schema": {"type": "integer", "minimum": 0, "maximum": 10**15, "default": 0}},
                    # 0: the status alone (results empty, next_offset null).
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 100}},
                    {"name": "wait", "in": "query", "description":
                     "Answer as soon as the job is final, or after this many seconds as it stands",
                     "schema": {"type": "number", "minimum": 0, "maximum": 30, "default": 0}}],
                "responses": {
                    "200": {"description": "The job",
                            "content": {_JSON: {"schema": {"$ref": "#/components/schemas/JobWithResults"}}}},
                    "400": _error("Bad offset, limit or wait"),
                    "404": _error("No such job (or it expired)")}},
            "delete": {
                "summary": "Cancel what has not run (waiting posters, the rest of a folder); results stay",
                "operationId": "cancelJob",
                "parameters": [_job_id()],
                "responses": {
                    "200": {"description": "The job as it stands now",
                            "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Job"}}}},
                    "404": _error("No such job (or it expired)"),
                    "409": _error("The job is final already (job_finished): its results stay")}},
        },
        "/jobs/{job_id}/results": {"get": {
            "summary": "Every result as CSV or JSON Lines (the columns of `posterq label`, each row with "
                       "the version of the model that labelled it: model_version)",
            "operationId": "downloadResults",
            "parameters": [_job_id(), {"name": "format", "in": "query",
                                       "schema": {"type": "string", "enum": ["csv", "jsonl"],
                                                  "default": "csv"}}],
            "responses": {
                "200": {"description": "The results", "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/x-ndjson": {"schema": {"type": "string"}}}},
                "400": _error("Unknown format"),
                "404": _error("No such job (or it expired)")}}},
        "/jobs/{job_id}/retry": {"post": _repeat(
            "retryJob", "A new job of a final job's failed posters (same key, top_k and model unless the "
            "body names others); the new job's retry_of names the job", "the job has no failed posters "
            "(no_failed_posters)")},
        "/jobs/{job_id}/rerun": {"post": _repeat(
            "rerunJob", "A new job of a final job's posters, labelled by the model the body names; the new "
            "job's rerun_of names the job", "", required=["model"])},
        "/analysis/": {
            "get": {
                "summary": "The original project's hint: POST a poster here",
                "operationId": "analysisHint",
                "responses": {"200": {"description": '{"result": "Send post request"}',
                                      "content": {_JSON: {"schema": {"type": "object"}}}}}},
            "post": {
                "summary": "One poster's genres, best first, through the queue (waits for the answer)",
                "operationId": "analyse",
                "parameters": [{"name": "top_k", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": 24}}],
                "requestBody": {"required": True, "content": {
                    "text/plain": {"schema": {"type": "string", "description":
                                              "base64 of the image, optionally as a data: URL"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                        "file": {"type": "string", "format": "binary"}}}}}},
                "responses": {
                    "200": {"description": "The genres", "content": {_JSON: {"schema": {
                        "type": "object", "required": ["result"], "properties": {
                            "result": {"type": "array", "items": {"type": "string"}},
                            "scores": {"type": "object", "additionalProperties": {"type": "number"}},
                            "model": {"type": "object", "nullable": True},
                            "job": {"type": "string"}}}}}},
                    "400": _error("Not an image, an unsupported format, a corrupt image, or a bad top_k"),
                    "413": _error("Over the per-poster or request size limit"),
                    "429": _busy(),
                    "503": _error("Redis, the database or the queue unavailable, or Redis too full for "
                                  "new work (redis_full); nothing of the job was kept"),
                    "504": _error("No worker answered within POSTERQ_ANALYSIS_TIMEOUT")}}},
        "/limits": {"get": {
            "summary": "The limits a client must respect", "operationId": "getLimits",
            "responses": {"200": {"description": "Limits", "content": {_JSON: {"schema": {
                "type": "object", "properties": {
                    "max_request_bytes": {"type": "integer"}, "max_posters_per_job": {"type": "integer"},
                    "max_file_bytes": {"type": "integer"}, "batch_size": {"type": "integer"},
                    "part_overhead_bytes": {"type": "integer"}, "request_overhead_bytes": {"type": "integer"},
                    "genres": {"type": "array", "items": {"type": "string"}}}}}}}}}},
        "/models": {"get": {
            "summary": "The models live workers hold (what a job may name)", "operationId": "listModels",
            "responses": {"200": {"description": "Models held", "content": {_JSON: {"schema": {
                "type": "object", "properties": {"models": {"type": "array", "items": {
                    "type": "object", "properties": {
                        "model": {"type": "string"}, "name": {"type": "string"},
                        "version": {"type": "string"}, "workers": {"type": "integer"}}}}}}}}}}}},
        "/dashboard": {"get": {
            "summary": "The page's dashboard: the caller's jobs with rate and ETA (every job without API "
                       "keys), and for operators the workers, the queue and posters/s over the last hour",
            "operationId": "dashboard",
            "parameters": [
                {"name": "offset", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 0, "maximum": 10**15}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 100}}],
            "responses": {
                "200": {"description": "One page of jobs, and the operators' figures (null unless the "
                                       "service has no API keys or the key is an operator's)",
                        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Dashboard"}}}},
                "400": _error("Bad offset or limit")}}},
        "/healthz": {"get": {
            "summary": "The API process is up", "operationId": "healthz",
            "responses": {"200": {"description": "Up", "content": {_JSON: {"schema": {"type": "object"}}}}}}},
        "/readyz": {"get": {
            "summary": "Redis and the database answer and at least one worker is alive",
            "operationId": "readyz",
            "responses": {
                "200": {"description": "Ready",
                        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Ready"}}}},
                "503": {"description": "Not ready",
                        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Ready"}}}}}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics (with API keys: an operator's key)", "operationId": "metrics",
            "responses": {"200": {"description": "Text exposition format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          "403": _error("An API key that is not one of POSTERQ_OPERATOR_KEYS")}}},
        "/openapi.json": {"get": {
            "summary": "This document", "operationId": "openapi",
            "responses": {"200": {"description": "OpenAPI 3",
                                  "content": {_JSON: {"schema": {"type": "object"}}}}}}},
        "/": {"get": {
            "summary": "The web page: pick posters, follow the job, browse and download the results",
            "operationId": "page",
            "responses": {"200": {"description": "HTML",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/static/{name}": {"get": {
            "summary": "A file of the web page (its script modules, style sheet and icon)",
            "operationId": "pageFile",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "The file", "content": {
                    "text/javascript": {"schema": {"type": "string"}},
                    "text/css": {"schema": {"type": "string"}},
                    "text/html": {"schema": {"type": "string"}},
                    "image/svg+xml": {"schema": {"type": "string"}}}},
                "404": _error("The page has no such file")}}},
    },
    "components": {"schemas": {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
        "Job": {"type": "object", "required": ["id", "status", "total", "done", "failed", "progress"],
                "properties": {
                    "id": {"type": "string"},
                    # The name the client gave at submission, null for none.
                    "name": {**_NAME, "nullable": True},
                    "status": {"type": "string",
                               "enum": [status.value for status in JobStatus]},
                    "source": {"type": "string", "enum": ["upload", "zip", "directory", "analysis"]},
                    # A directory job's folder below its data root ("." for the root itself), null
                    # for the other sources: the server's absolute paths are not shown.
                    "folder": {"type": "string", "nullable": True},
                    "total": {"type": "integer"}, "done": {"type": "integer"}, "failed": {"type": "integer"},
                    "progress": {"type": "number"},
                    # False while a directory job's folder is still being listed (total grows).
                    "enumerated": {"type": "boolean"},
                    "top_k": {"type": "integer", "nullable": True},
                    # The model that labelled the job's first posters (each result has its own
                    # model_version); its genres are GET /limits'.
                    "model": {"type": "object", "nullable": True, "properties": {
                        "name": {"type": "string"}, "version": {"type": "string"}}},
                    # The model the job named at submission; null: any worker's model serves it.
                    "requested_model": {"type": "string", "nullable": True},
                    # True while the job is not final and no live worker holds the model it named.
                    "waiting_for_model": {"type": "boolean"},
                    "created_at": {"type": "number"},
                    "claimed_at": {"type": "number", "nullable": True},
                    "started_at": {"type": "number", "nullable": True},
                    "finished_at": {"type": "number", "nullable": True},
                    # The same moments as RFC 3339 in UTC, with milliseconds.
                    "created": {"type": "string", "format": "date-time"},
                    "claimed": {"type": "string", "format": "date-time", "nullable": True},
                    "started": {"type": "string", "format": "date-time", "nullable": True},
                    "finished": {"type": "string", "format": "date-time", "nullable": True},
                    "elapsed_s": {"type": "number"},
                    "posters_per_second": {"type": "number", "nullable": True},
                    # Why the job failed as a whole (listing_failed), else null.
                    "error": {"type": "object", "nullable": True, "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}}},
                    # A directory job's output file: where, how it stands, and why it was not written.
                    "output": {"type": "string", "nullable": True},
                    "output_status": {"type": "string", "nullable": True,
                                      "enum": [status.value for status in OutputStatus] + [None]},
                    "output_error": {"type": "object", "nullable": True, "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}}},
                    # The job this one repeats: its failed posters (retry) or with another model (rerun).
                    "retry_of": {"type": "string", "nullable": True},
                    "rerun_of": {"type": "string", "nullable": True},
                    # Whether the job reuses results by content (its "reuse", and the service's).
                    "reuse": {"type": "boolean"},
                    "url": {"type": "string"}, "results_url": {"type": "string"}}},
        "Result": {"type": "object", "required": ["index", "name", "status"], "properties": {
            "index": {"type": "integer"}, "name": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "ok", "error"]},
            "genres": {"type": "array", "items": {"type": "string"}},
            "scores": {"type": "object", "additionalProperties": {"type": "number"}},
            "error": {"type": "object", "nullable": True, "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}}},
            "worker": {"type": "string", "nullable": True},
            # The version of the model that classified the poster (each result's own).
            "model_version": {"type": "string", "nullable": True},
            # A result stored for the same bytes and model earlier, not classified for this job.
            "reused": {"type": "boolean"}}},
        "JobWithResults": {"allOf": [{"$ref": "#/components/schemas/Job"}, {"type": "object", "properties": {
            "offset": {"type": "integer"}, "limit": {"type": "integer"},
            "next_offset": {"type": "integer", "nullable": True},
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}}}}]},
        "DashboardJob": {"type": "object", "required": ["id", "status", "total", "done", "failed"],
                         "properties": {
            "id": {"type": "string"}, "name": {"type": "string", "nullable": True},
            "status": {"type": "string", "enum": [status.value for status in JobStatus]},
            "source": {"type": "string"}, "output": {"type": "string", "nullable": True},
            # A directory job's folder below its data root, as in Job.
            "folder": {"type": "string", "nullable": True},
            "total": {"type": "integer"}, "done": {"type": "integer"}, "failed": {"type": "integer"},
            "progress": {"type": "number"}, "enumerated": {"type": "boolean"},
            # "name@version" once a worker labelled a poster, else the model the job named, else null.
            "model": {"type": "string", "nullable": True},
            "created_at": {"type": "number"}, "age_s": {"type": "number"},
            # From its first result on; null before it has one.
            "posters_per_second": {"type": "number", "nullable": True},
            # Seconds left at that rate; null when final, without a rate, or while a folder is listed.
            "eta_s": {"type": "number", "nullable": True},
            "url": {"type": "string"}}},
        "Dashboard": {"type": "object", "required": ["jobs", "operators"], "properties": {
            "now": {"type": "number"},
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/DashboardJob"}},
            "offset": {"type": "integer"}, "limit": {"type": "integer"},
            "next_offset": {"type": "integer", "nullable": True},
            "operators": {"type": "object", "nullable": True, "properties": {
                "workers": {"type": "array", "items": {"type": "object", "properties": {
                    "hostname": {"type": "string"}, "host": {"type": "string", "nullable": True},
                    "model": {"type": "string", "nullable": True},
                    # Its CPU's model, vector features and cores, as one line.
                    "cpu": {"type": "string", "nullable": True},
                    "processes": {"type": "integer", "nullable": True},
                    "posters_per_second": {"type": "number"}, "last_seen_s": {"type": "number"}}}},
                "waiting_by_lane": {"type": "object", "additionalProperties": {"type": "integer"}},
                "queued_by_pool": {"type": "array", "items": {"type": "object", "properties": {
                    "pool": {"type": "string", "nullable": True}, "queued": {"type": "integer"},
                    "workers": {"type": "integer"}, "held": {"type": "boolean"}}}},
                "posters_per_second": {"type": "number"},
                "throughput": {"type": "array", "items": {"type": "object", "properties": {
                    "at": {"type": "integer"}, "posters_per_second": {"type": "number"}}}}}}}},
        "Ready": {"type": "object", "properties": {
            "status": {"type": "string", "enum": ["ready", "not_ready"]}, "redis": {"type": "boolean"},
            "database": {"type": "boolean"}, "worker_count": {"type": "integer"},
            # Operators only, where the service has API keys (POSTERQ_OPERATOR_KEYS).
            "workers": {"type": "array", "items": {"type": "string"}}}},
    }},
}


_BEARER = {"type": "http", "scheme": "bearer", "description":
           "An API key (POSTERQ_API_KEYS); needed by every operation but the probes and the page "
           "when the server has keys, and a job is visible only to the key that made it"}


@blueprint.get("/openapi.json")
def openapi():
    """The OpenAPI document, with the server's public (or a relative) URL, and its API keys if any."""
    document = copy.deepcopy(DOCUMENT)
    # Which operations are public comes from the routes themselves (posterq.api.auth), not a second list.
    public = {rule.rule.replace("<", "{").replace(">", "}") for rule in current_app.url_map.iter_rules()
              if rule.endpoint in auth.PUBLIC_ENDPOINTS}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path in public:
                operation["security"] = []
            else:
                operation["responses"]["401"] = _error("No API key, or one that is not valid "
                                                       "(only where the server has keys)")
    document["components"]["securitySchemes"] = {"bearerAuth": _BEARER}
    if current_app.extensions["posterq"]["api_keys"].enabled:
        document["security"] = [{"bearerAuth": []}]
    # POSTERQ_PUBLIC_URL, or a relative URL (resolved against this document's): never the Host header.
    document["servers"] = [{"url": public_root()}]
    return jsonify(document)
