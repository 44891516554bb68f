"""The app's posterq objects, as the views see them."""

from flask import current_app

from posterq.config import Settings
from posterq.jobs.broker import Broker
from posterq.jobs.store import JobStore


def settings() -> Settings:
    """The app's settings."""
    return current_app.extensions["posterq"]["settings"]


def store(pool: str = "") -> JobStore:
    """The app's job store of a pool (posterq.jobs.pools; the default pool unless told)."""
    return current_app.extensions["posterq"]["store"].for_pool(pool)


def broker(pool: str = "") -> Broker:
    """The app's broker of a pool: batch tokens sent to its queue, and how many wait there."""
    default = current_app.extensions["posterq"]["broker"]
    return default if not pool else default.for_pool(pool, store(pool).settings)
