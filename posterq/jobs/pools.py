"""Models a job may name, and the pools that serve them: one Celery queue and one key prefix per model.

A job that names no model is in the default pool: every worker serves it, whatever model it holds,
and each result records the version that made it, which is what lets old and new workers share it
during a rolling upgrade. A job that names a model ("name@version", or "name" for any version) is
in a pool of its own, served only by the workers that hold that model: its tokens travel on the
queue "<queue>.<pool>" (Celery's own routing) and its Redis side lives under "<prefix>:model:<pool>",
so the fair queue's scripts work unchanged inside each pool.
"""

import re

from posterq.config import Settings
from posterq.jobs.keys import Keys

#: What a job may name: a model's name, optionally "@version"; it becomes part of a queue's and
#: keys' names, so nothing else is allowed (no ":" or "*" that could name other keys).
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}(@[A-Za-z0-9][A-Za-z0-9.+_-]{0,49})?")
#: The default pool: jobs that name no model.
DEFAULT_POOL = ""


def identity(name: str, version: str) -> str:
    """A model's identity as jobs name it and workers announce it: "name@version"."""
    return f"{name}@{version}"


def is_model_name(value: object) -> bool:
    """True when value is a model a job may name: "name" or "name@version"."""
    return isinstance(value, str) and _MODEL.fullmatch(value) is not None


def pools_of(model: str | None) -> list[str]:
    """The pools a worker holding `model` ("name@version") serves: the default, its version, its name."""
    if not model:
        return [DEFAULT_POOL]
    return [DEFAULT_POOL, model, model.partition("@")[0]]


def pool_settings(settings: Settings, pool: str) -> Settings:
    """The settings of one pool: its own key prefix and Celery queue (the default pool's are settings')."""
    if pool == DEFAULT_POOL:
        return settings
    return settings.replace(key_prefix=Keys(settings.key_prefix).pool_prefix(pool),
                            queue=f"{settings.queue}.{pool}")


def held_by(workers: dict[str, dict]) -> dict[str, int]:
    """Models live workers hold ("name@version" -> how many workers), from their heartbeats."""
    held: dict[str, int] = {}
    for info in workers.values():
        if info.get("model"):
            held[info["model"]] = held.get(info["model"], 0) + 1
    return held


def is_held(model: str, held) -> bool:
    """True when a held model serves the pool of `model` ("name@version" exactly, or "name": any version)."""
    return any(model in pools_of(one)[1:] for one in held)


def listed(settings: Settings) -> list[str]:
    """The models the operator listed (POSTERQ_MODELS): jobs may wait for them before a worker holds them."""
    return [name for name in re.split(r"[,\s]+", settings.models.strip()) if name]


def is_known(model: str, announced, operator_listed) -> bool:
    """True when a job may wait for `model`: a worker announced it lately, or the operator listed it.

    A listed "name" admits any version of it; a listed "name@version" that version and the name.
    """
    return is_held(model, announced) or any(model in (one, one.partition("@")[0]) for one in operator_listed)
