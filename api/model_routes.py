"""The models blueprint: which models live workers hold, and the model a submission names."""

from flask import Blueprint, jsonify

from posterq.api import context
from posterq.api.exceptions import BadRequest, ModelUnavailable
from posterq.jobs.keys import JobStatus
from posterq.jobs.pools import DEFAULT_POOL, held_by, is_held, is_known, is_model_name, listed

blueprint = Blueprint("models", __name__)


def held() -> dict[str, int]:
    """Models held by live workers ("name@version" -> workers), from their heartbeats."""
    return held_by(context.store().stats.workers())


@blueprint.get("/models")
def list_models():
    """The models live workers hold, each with its name, version and how many workers hold it."""
    models = [{"model": model, "name": model.partition("@")[0], "version": model.partition("@")[2],
               "workers": count} for model, count in sorted(held().items())]
    return jsonify({"models": models})


def waiting_for_model(job: dict, models: dict[str, int] | None = None) -> bool:
    """True when a job not final names a model that no live worker holds: it waits for one to start.

    models: what held() answers, read here when not given (only for a job that names a model).
    """
    model = job.get("requested_model")
    if not model or JobStatus(job["status"]).final:
        return False
    return not is_held(model, held() if models is None else models)


def parse_wait(value) -> bool:
    """An optional wait_for_model: JSON true/false, or a form or query value 1/0, true/false."""
    if value is None or value == "" or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
        return value.lower() in ("1", "true", "yes")
    raise BadRequest("wait_for_model must be true or false", "bad_wait_for_model")


def requested_pool(model, wait: bool) -> str:
    """The pool of the model a submission names ("" for none); 409 model_unavailable if no worker holds it.

    With wait, a job for a model no worker holds now is accepted and waits on its queue until a
    worker holding it starts, if a worker announced that model within model_announcement_ttl or
    the operator listed it in POSTERQ_MODELS; any other name is refused, 409 unknown_model.
    """
    if model is None or model == "":
        return DEFAULT_POOL
    if not is_model_name(model):
        raise BadRequest("model must be a model's name, or name@version (letters, digits, '.', '_', '-')",
                         "bad_model")
    models = held()
    if is_held(model, models):
        return model
    if wait and not is_known(model, context.store().stats.announced(), listed(context.settings())):
        # A made-up name would park its posters where no worker will ever come.
        raise ModelUnavailable(f"no worker has announced the model {model} lately and the operator has "
                               "not listed it (POSTERQ_MODELS): a job cannot wait for it",
                               sorted(models), code="unknown_model")
    if not wait:
        names = ", ".join(sorted(models)) or "none"
        raise ModelUnavailable(f"no live worker holds the model {model} (workers hold: {names}); start one "
                               "with POSTERQ_MODEL, or submit with wait_for_model to wait for one",
                               sorted(models))
    return model
