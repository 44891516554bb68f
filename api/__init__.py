"""posterq's HTTP API: a Flask app factory; blueprints for jobs, dashboard, health, metrics, OpenAPI doc."""

import logging

from flask import Flask

from posterq.config import Settings

log = logging.getLogger(__name__)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the API app. test_config may hold Flask settings and a "SETTINGS" (posterq.config.Settings)."""
    from posterq.api import (
        analysis,
        auth,
        backpressure,
        dashboard_routes,
        handlers,
        health,
        job_routes,
        metrics,
        model_routes,
        openapi,
        page,
        rerun_routes,
    )
    from posterq.api.deadline import BodyDeadline
    from posterq.jobs.broker import Broker
    from posterq.jobs.store import JobStore

    app = Flask(__name__, static_folder=None)
    test_config = dict(test_config or {})
    settings = test_config.pop("SETTINGS", None) or Settings.from_env()
    # Werkzeug refuses bodies over this with 413 before the view reads them.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    # Uploads stay in memory up to the request limit instead of spilling to temporary files.
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_request_bytes
    app.config["MAX_FORM_PARTS"] = settings.max_posters_per_job + 100
    app.config.update(test_config)
    store = JobStore.from_settings(settings)
    app.extensions["posterq"] = {"settings": settings, "store": store,
                                 "broker": Broker.from_settings(settings)}
    store.migrate()
    app.wsgi_app = BodyDeadline(app.wsgi_app, settings.request_timeout)
    handlers.register(app)
    backpressure.register(app)
    auth.register(app, auth.ApiKeys.from_settings(settings))
    for module in (job_routes, rerun_routes, analysis, dashboard_routes, health, metrics, model_routes,
                   openapi, page):
        app.register_blueprint(module.blueprint)
    return app
