"""The app's posterq objects, as the views see them."""

from flask import current_app

from posterq.config import Settings
from posterq.jobs.broker import Broker
from posterq.jobs.store import JobStore


def settings() -> Settings:
    """The app's settings."""
    return current_app.extensions["posterq"]["settings"]


def store() -> JobStore:
    """The app's job store."""
    return current_app.extensions["posterq"]["store"]


def broker() -> Broker:
    """The app's broker: batch tokens sent, and how many wait."""
    return current_app.extensions["posterq"]["broker"]
