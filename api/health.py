"""Liveness and readiness."""

from flask import Blueprint, jsonify

from posterq.api import auth, context

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    """The process is up (says nothing about Redis or workers)."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz():
    """Ready when Redis and the database answer and a worker's heartbeat is alive (at most 3 intervals old).

    Worker names (host names) are for operators: with API keys on, only an operator's key sees
    them; everyone sees how many workers are alive.
    """
    store = context.store()
    redis_ok = store.ping()
    workers = sorted(store.stats.workers()) if redis_ok else []
    database_ok = store.database.ping()
    ready = redis_ok and database_ok and bool(workers)
    body = {"status": "ready" if ready else "not_ready", "redis": redis_ok, "database": database_ok,
            "worker_count": len(workers)}
    if auth.operator():
        body["workers"] = workers
    return jsonify(body), 200 if ready else 503
