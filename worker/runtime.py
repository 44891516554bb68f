"""Per-process state of a worker: its settings, its store, its one Classifier, its heartbeat."""

import logging
import os
import socket

from posterq.config import Settings, available_cores
from posterq.exceptions import PosterqError
from posterq.jobs.pools import DEFAULT_POOL, identity, pools_of
from posterq.jobs.store import JobStore
from posterq.worker.periodic import Periodic

log = logging.getLogger(__name__)

# Set in the worker's main process before the pool forks, so each child can size its threads.
_processes = {"count": 0}
_state: dict = {}
# The name `posterq worker --hostname` was given, set in the main process before the pool forks.
_given = {"name": ""}
#: What Celery puts before a node name given without "@" (celery.utils.nodenames.default_nodename).
CELERY_PREFIX = "celery@"


def set_processes(count: int) -> None:
    """Remember how many pool processes share this host's cores."""
    _processes["count"] = count


def set_given_name(name: str) -> None:
    """Remember the worker's name as its operator gave it (`posterq worker --hostname NAME`)."""
    _given["name"] = name


def shown_name(node: str) -> str:
    """The worker's name in heartbeats and result rows: as given, without the "celery@" Celery added.

    Celery needs a node name of the form name@host and makes "celery@new-1" of a bare "new-1";
    a name given as name@host (or a worker started by `celery` itself) is shown as it is.
    """
    given = _given["name"]
    return given if given and "@" not in given and node == CELERY_PREFIX + given else node


def _local() -> dict:
    # Keyed by pid: a forked child must never use its parent's Redis sockets or interpreter.
    if _state.get("pid") != os.getpid():
        _state.clear()
        _state["pid"] = os.getpid()
    return _state


def settings() -> Settings:
    """This process's settings, read from the environment once."""
    state = _local()
    if "settings" not in state:
        state["settings"] = Settings.from_env()
    return state["settings"]


def store(pool: str = DEFAULT_POOL) -> JobStore:
    """This process's job store of a pool (the default one unless told), shared by its threads."""
    # One per process is enough: a redis-py client is thread safe and gives each call a connection
    # of its own from its pool, so the main process's heartbeat and sweep never wait on each other.
    state = _local()
    if "store" not in state:
        state["store"] = JobStore.from_settings(settings())
    return state["store"].for_pool(pool)


def model() -> str | None:
    """The identity ("name@version") of the model this worker holds, or None when its bundle is unusable.

    Read from model.json (and checked against the file's sha256) without loading an interpreter,
    so that the main process can say which model it holds and which queues it consumes.
    """
    state = _local()
    if "model" not in state:
        from posterq.bundle import load_bundle

        try:
            bundle = load_bundle(settings().model_path)
            state["model"] = identity(bundle.name, bundle.version)
            state["model_sha256"] = bundle.meta["sha256"]
        except PosterqError as exc:
            # Its batches fail their posters with the reason (posterq.worker.batching); it serves no
            # model's pool.
            log.error("cannot read the model bundle: %s", exc.message)
            state["model"] = None
    return state["model"]


def model_sha256() -> str | None:
    """The sha256 of the model file this worker holds (None when its bundle is unusable)."""
    model()
    return _local().get("model_sha256")


def pools() -> list[str]:
    """The pools this worker serves: the default one, and its model's (by version and by name)."""
    return pools_of(model())


def classifier():
    """This process's Classifier, loaded on first use (after fork, never at import time)."""
    state = _local()
    if "classifier" not in state:
        # Imported here: LiteRT belongs to the worker processes only.
        from posterq.classifier import Classifier

        config = settings()
        threads = default_threads(_processes["count"] or available_cores(), config)
        solo = config.solo_threads or available_cores()
        state["classifier"] = Classifier(config.model_path, num_threads=threads, solo_threads=solo)
        log.info("process %d loaded %s with %d interpreter threads (%d for a lone poster)", os.getpid(),
                 state["classifier"].bundle.identity, threads, max(threads, solo))
    return state["classifier"]


def default_threads(processes: int, settings: Settings) -> int:
    """Interpreter threads per process so that processes x threads ~ the cores this worker may use."""
    if settings.threads:
        return settings.threads
    return max(1, available_cores() // max(1, processes))


class Heartbeat(Periodic):
    """Tells Redis every heartbeat_interval that this worker is alive, from its main process."""

    def __init__(self, store: JobStore, hostname: str, processes: int, model: str | None = None,
                 cpu: dict | None = None, model_sha256: str | None = None):
        self.store, self.hostname = store, hostname
        # The model is what GET /models lists and what a job naming one is checked against; its
        # file's sha256 tells intake which stored results the model would give (posterq.jobs.reuse);
        # the CPU (posterq.cpu.cpu_facts) says why one host's posters/s differ from another's.
        info = {"hostname": hostname, "host": socket.gethostname(), "pid": os.getpid(),
                "processes": processes, "model": model, "model_sha256": model_sha256, "cpu": cpu}
        super().__init__("posterq-heartbeat", store.settings.heartbeat_interval,
                         lambda: store.stats.heartbeat(hostname, info), at_once=True)

    def stop(self) -> None:
        """Stop beating and remove the heartbeat."""
        super().stop()
        try:
            self.store.stats.forget_worker(self.hostname)
        except Exception:  # shutting down; Redis may be gone too
            log.debug("could not remove the heartbeat of %s", self.hostname, exc_info=True)
