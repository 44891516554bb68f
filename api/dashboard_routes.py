"""The dashboard blueprint: the caller's jobs with rate and ETA; for operators, workers, queue and throughput.

What the page's dashboard shows comes from here in one request, read from the job store: never
parsed out of /metrics. The operators' part ("operators") shows every key's work, so with API keys
on it is given only to an operator's key (POSTERQ_OPERATOR_KEYS), as /metrics and /readyz's worker
names are; any other key gets null there, and its own jobs.
"""

import time
from datetime import datetime

from flask import Blueprint, jsonify

from posterq.api import auth, context
from posterq.api.job_routes import MAX_OFFSET, number_arg
from posterq.api.urls import public_url_for
from posterq.cpu import describe
from posterq.jobs.keys import JobStatus, Lane
from posterq.jobs.pools import DEFAULT_POOL, held_by, is_held
from posterq.jobs.stats import throughput_field

blueprint = Blueprint("dashboard", __name__)

#: Jobs on one page of the dashboard, and the most one request may ask for.
DEFAULT_JOBS, MAX_JOBS = 20, 100


@blueprint.get("/dashboard")
def dashboard():
    """The caller's jobs, newest first and paged, each with rate and ETA; and the operators' figures."""
    offset = number_arg("offset", 0, 0, MAX_OFFSET)
    limit = number_arg("limit", DEFAULT_JOBS, 1, MAX_JOBS)
    owner = auth.owner() if auth.keys_enabled() else None
    jobs = context.store().jobs.page(owner, None, offset, limit + 1)
    now = time.time()
    return jsonify({"now": now, "jobs": [job_summary(job, now) for job in jobs[:limit]],
                    "offset": offset, "limit": limit,
                    "next_offset": offset + limit if len(jobs) > limit else None,
                    "operators": operators(now) if auth.operator() else None})


def _epoch(value) -> float | None:
    """A timestamp as epoch seconds, whether the job gives it as a number or as RFC 3339 text."""
    if value is None or isinstance(value, int | float):
        return value
    return datetime.fromisoformat(value).timestamp()


def _model(job: dict) -> str | None:
    """The model that labels the job ("name@version"), else the one it named, else None (not yet known)."""
    model = job.get("model") or {}
    if model.get("name"):
        return f"{model['name']}@{model.get('version', '')}".rstrip("@")
    return job.get("requested_model")


def job_summary(job: dict, now: float) -> dict:
    """One row of the dashboard: counts, source, age, model, posters/s so far and seconds left (ETA)."""
    finished = job["done"] + job["failed"]
    created = _epoch(job["created_at"])
    end = _epoch(job.get("finished_at")) or now
    # From its first result on: the time a job waited for a worker is not its rate's.
    began = _epoch(job.get("started_at")) or _epoch(job.get("claimed_at"))
    seconds = end - began if began else 0.0
    rate = round(finished / seconds, 3) if finished and seconds > 0 else None
    remaining = max(0, job["total"] - finished)
    # A folder still being listed has more posters than its total says: no ETA rather than a wrong one.
    eta = (round(remaining / rate, 1) if rate and job["enumerated"] and not JobStatus(job["status"]).final
           else None)
    return {"id": job["id"], "name": job.get("name"), "status": job["status"], "source": job["source"],
            "folder": job.get("folder"), "output": job.get("output"), "total": job["total"],
            "done": job["done"], "failed": job["failed"], "progress": job["progress"],
            "enumerated": job["enumerated"], "model": _model(job),
            "created_at": created, "age_s": round(max(0.0, now - created), 1),
            "posters_per_second": rate, "eta_s": eta,
            "url": public_url_for("jobs.get_job", job_id=job["id"])}


def operators(now: float) -> dict:
    """Workers with their rate, posters waiting by lane and by model pool, and posters/s over the hour."""
    store = context.store()
    heartbeats = store.stats.workers()
    throughput = store.stats.throughput()
    workers = [{"hostname": name, "host": info.get("host"), "model": info.get("model"),
                "cpu": describe(info["cpu"]) if info.get("cpu") else None,
                "processes": info.get("processes"),
                "posters_per_second": throughput.rate(throughput_field(name)),
                "last_seen_s": round(max(0.0, now - info.get("seen_at", now)), 1)}
               for name, info in sorted(heartbeats.items())]
    # Admitted and not yet classified, by pool (the database's count, as /metrics gives it).
    by_pool = store.ledger.queued_by_pool() if store.database.ping() else {}
    lanes = dict.fromkeys((lane.value for lane in Lane), 0)
    for pool in sorted({DEFAULT_POOL, *by_pool}):
        waiting = context.store(pool).fair_queue.waiting()
        for lane in lanes:
            lanes[lane] += waiting.get(f"lane:{lane}", 0)
    held = held_by(heartbeats)
    pools = [{"pool": pool or None, "queued": count, "workers": _holding(pool, held, len(heartbeats)),
              "held": pool == DEFAULT_POOL or is_held(pool, held)}
             for pool, count in sorted(by_pool.items()) if count]
    return {"workers": workers, "waiting_by_lane": lanes, "queued_by_pool": pools,
            "posters_per_second": throughput.rate(),
            "throughput": [{"at": start, "posters_per_second": rate} for start, rate in throughput.series()]}


def _holding(pool: str, held: dict[str, int], live: int) -> int:
    """Live workers serving a pool: every one (live) for the default pool, else those holding its model."""
    if pool == DEFAULT_POOL:
        return live
    return sum(count for model, count in held.items() if is_held(pool, [model]))
