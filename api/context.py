"""The app's posterq objects, as the views see them."""

from flask import current_app

from posterq.config import Settings
from posterq.jobs.store import JobStore


def settings() -> Settings:
    """The app's settings."""
    return current_app.extensions["posterq"]["settings"]


def store() -> JobStore:
    """The app's job store."""
    return current_app.extensions["posterq"]["store"]


def queue():
    """The app's enqueuer (api.queue.Enqueuer)."""
    return current_app.extensions["posterq"]["queue"]
