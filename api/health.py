"""Liveness and readiness."""

from flask import Blueprint, jsonify

from api import context

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    """The process is up (says nothing about Redis or workers)."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz():
    """Ready when Redis answers and a worker's heartbeat is alive (at most three intervals old)."""
    store = context.store()
    redis_ok = store.ping()
    workers = sorted(store.stats.workers()) if redis_ok else []
    ready = redis_ok and bool(workers)
    body = {"status": "ready" if ready else "not_ready", "redis": redis_ok, "workers": workers}
    return jsonify(body), 200 if ready else 503
