"""Settings and defaults: each default lives here once; POSTERQ_* environment variables override them."""

import importlib.resources
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

from posterq.exceptions import PosterqError

MIB = 1 << 20


def _models_root() -> Path:
    # An installed wheel carries models/ as package data, posterq/_models/ (pyproject.toml maps
    # it); a checkout and an editable install have it at the repository root.
    packaged = importlib.resources.files("posterq") / "_models"
    if packaged.is_dir() and any(Path(str(packaged)).glob("*/model.json")):
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "models"


#: The default shipped bundle's name; POSTERQ_MODEL (Settings.model) or --model names another
#: shipped bundle, or gives the folder of any bundle.
DEFAULT_MODEL = "effnet-lite0-posters"
#: The default shipped model bundle, found after any kind of install.
DEFAULT_MODEL_DIR = _models_root() / DEFAULT_MODEL
#: The environment variable that names the bundle (Settings.model, read alone by model_from_env).
MODEL_ENV = "POSTERQ_MODEL"


def shipped_models() -> list[str]:
    """Names of the bundles shipped with posterq (folders of models/)."""
    return sorted(path.parent.name for path in _models_root().glob("*/model.json"))


def model_folder(value: str | os.PathLike | None) -> Path:
    """The bundle folder that `value` means: empty for the default, a shipped bundle's name, or a path."""
    if not value:
        return DEFAULT_MODEL_DIR
    path = Path(value).expanduser()
    if not path.exists() and str(value) in shipped_models():
        return _models_root() / str(value)
    return path


def model_from_env(environ=None) -> Path:
    """The bundle folder $POSTERQ_MODEL names (else the default), reading no other setting.

    The core (`posterq label`, Labeller) calls this rather than Settings.from_env(), so that a
    service setting it does not use (a bad POSTERQ_BATCH_SIZE) cannot stop it.
    """
    environ = os.environ if environ is None else environ
    return model_folder(environ.get(MODEL_ENV, ""))


#: Posters per interpreter invoke for `posterq label` and `posterq evaluate`: on a CPU an invoke
#: costs about the same per poster at any batch size, so small batches keep every process busy to
#: the end of a folder (measured by bench/label_batch.py; docs/benchmarks.md).
BATCH_SIZE = 2
#: Most posters a batch (one Celery token, one claim) takes in the service: each batch costs Redis
#: and Celery a few dozen commands however many posters it holds, so bulk work comes in batches of
#: this many; it never waits for a batch to fill (max_batch_wait), so a lone poster still runs at
#: once (docs/benchmarks.md, bench.redis_cost).
SERVICE_BATCH_SIZE = 8
#: Posters per interpreter invoke in the service: a batch runs in invokes of this many (an invoke
#: costs about the same per poster at any size on a CPU, and each poster in it holds memory), and a
#: one-poster call waiting between two joins the batch; a batch that holds one takes no more than
#: this many, so the call waits for one small invoke, not for a bulk batch.
INVOKE_SIZE = 2
#: The largest poster file anywhere (`posterq label`, `posterq evaluate`, uploads, data roots).
#: One limit, so that a folder gives the same rows locally and through the service; far above a
#: real poster, it stops a stray video or disk image from being read whole into memory.
MAX_FILE_BYTES = 20 * MIB


def available_cores() -> int:
    """The cores this process may run on (a container or taskset may allow fewer than exist)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _paths(value: str) -> tuple[Path, ...]:
    # os.pathsep (":" on POSIX) separates roots, like PATH.
    return tuple(Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part.strip())


@dataclass(frozen=True)
class Settings:
    """Everything the API, the workers and the submit client read from the environment."""

    #: Broker and store; one Redis for both.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Where jobs and results last: a postgresql://user@host/db URL (what a service on several
    #: hosts needs), or empty for a SQLite file on this host (posterq.jobs.database). Out of repr:
    #: it may hold a password.
    database_url: str = field(default="", repr=False)
    #: Posters of one directory job held ready in Redis at a time, topped up from the database as
    #: workers drain them: Redis holds this window, never the whole folder. A few seconds of work
    #: for many workers, so a large job loses no speed to it (python -m bench.big_job measures).
    job_window: int = 2000
    #: Prefix of every key posterq writes (Celery's own keys are separate).
    key_prefix: str = "posterq"
    #: Celery queue the batch tasks travel on.
    queue: str = "posterq"
    #: Model bundle to load; empty means the shipped default (DEFAULT_MODEL_DIR).
    model: str = ""
    #: Most posters one batch (one Celery token, one claim) takes; the API sends a token per this many.
    batch_size: int = SERVICE_BATCH_SIZE
    #: Posters per interpreter invoke, and the most a batch holding a one-poster call takes.
    invoke_size: int = INVOKE_SIZE
    #: Seconds a part-filled batch waits for more posters (cross-job batching) before it runs.
    #: 0 (the default) never waits: a batch takes every poster ready when it starts, so a lone
    #: poster runs at once, and under load posters that queue up while an invoke runs share the
    #: next one. Waiting only pays where tasks start faster than posters arrive.
    max_batch_wait: float = 0.0
    #: Interpreter threads per worker process; 0 means cores // processes.
    threads: int = 0
    #: Threads of a second interpreter each worker process keeps for a batch of one poster, so
    #: that a lone poster runs on every core (at low load the other processes are idle); 0 means
    #: all available cores; the same value as `threads` means no second interpreter.
    solo_threads: int = 0
    #: Folders directory jobs may read (os.pathsep separated); none means directory jobs are refused.
    data_roots: tuple[Path, ...] = field(default_factory=tuple)
    #: Folders a directory job may write its output file into (`"output"`, os.pathsep separated);
    #: none means jobs may not ask for one.
    output_roots: tuple[Path, ...] = field(default_factory=tuple)
    #: Largest HTTP request body the API reads.
    max_request_bytes: int = 64 * MIB
    #: Most posters in one upload or zip job (their bytes sit in Redis until classified); a
    #: directory job may hold any number, since only job_window of them are in Redis at a time.
    max_posters_per_job: int = 10_000
    #: Largest single poster file, uploaded or read from a data root.
    max_file_bytes: int = MAX_FILE_BYTES
    #: Most bytes a zip may expand to (never more than max_request_bytes, the bound plain uploads
    #: have, whatever this says), and the largest compression ratio of one member.
    max_zip_bytes: int = 64 * MIB
    max_zip_ratio: int = 200
    #: Seconds a finished (or cancelled) job and its results are kept.
    result_ttl: int = 7 * 24 * 3600
    #: Seconds uploaded bytes are kept if nobody classifies them.
    upload_ttl: int = 24 * 3600
    #: Claims of one poster, after its first, after which it fails with `redelivered_too_often`.
    max_redeliveries: int = 3
    #: Tries of a job's output file that fails for a reason that may pass (a full disk, an I/O
    #: error) before its error is final; a reason that cannot pass (the name exists, is too long,
    #: the folder is gone) is final at once (posterq.output_files).
    max_output_tries: int = 5
    #: Seconds before Redis hands an unacknowledged batch to another worker; keep it above
    #: the longest batch (batch_size posters plus max_batch_wait) by a wide margin.
    visibility_timeout: int = 600
    #: Seconds between sweeps that return a dead worker's unacknowledged batches to the queue.
    restore_interval: float = 10.0
    #: Seconds between worker heartbeats. A heartbeat lives three intervals, so /readyz turns
    #: unready within three seconds of the last worker dying; one SET a second per worker is cheap.
    heartbeat_interval: float = 1.0
    #: Seconds one batch may run before its worker process is killed and the batch delivered
    #: again (a decode that hangs must not hold a worker forever); far above a real batch.
    batch_time_limit: float = 60.0
    #: Seconds between sweeps, run by one live worker at a time, that give back the posters of
    #: batches whose task is gone (older than batch_time_limit plus two sweeps) and send tokens
    #: for ready posters that no batch has claimed for three sweeps (see posterq.worker.sweep).
    sweep_interval: float = 5.0
    #: Seconds a client may take to send a request's body; a slower one gets 408 and its server
    #: thread back (64 MB at about 1 MB/s fits; a client trickling bytes does not hold a thread).
    request_timeout: float = 60.0
    #: Seconds POST /analysis/ waits for its poster's genres before answering 504.
    analysis_timeout: float = 30.0
    #: Posters waiting for a batch above which POST /jobs and POST /analysis/ answer 429 with
    #: Retry-After (backpressure): one full job's worth, minutes of work for a 2-core worker host
    #: at the throughput docs/benchmarks.md reports. More workers drain it faster; raise it with them.
    max_queued_posters: int = 10_000
    #: Posters one API key may have queued (with keys) before its own submissions get 429
    #: `key_queue_full` and its folders' listings pause; capped at max_queued_posters // keys, so
    #: that the keys' parts sum to at most the whole (posterq.jobs.admission).
    max_queued_posters_per_key: int = 5_000
    #: Models a job may name with wait_for_model before any worker has announced them ("name" or
    #: "name@version", separated by commas or spaces): what the operator is about to start.
    models: str = ""
    #: Seconds a model a worker announced stays one that jobs may name with wait_for_model after
    #: its last worker is gone (a restart, a rolling upgrade); a name never announced nor listed
    #: in `models` is refused at submit, so that made-up names park nothing.
    model_announcement_ttl: float = 24 * 3600.0
    #: The fraction of Redis's maxmemory that POST /jobs and POST /analysis/ keep free: beyond it,
    #: counting the request and a result for each waiting poster, they answer 503 `redis_full` with
    #: Retry-After. The room is for the workers' own writes (claims, results, Celery's bookkeeping),
    #: so that the batches that free memory can always run. Redis without maxmemory is not checked.
    redis_headroom: float = 0.2
    #: Seconds one reading of Redis's INFO memory serves an API process for redis_headroom: cheap,
    #: but not once a request. 0 reads it for every request (the tests: no waiting out a reading).
    redis_memory_interval: float = 1.0
    #: The most of the workers one-poster calls (POST /analysis/) take while bulk work waits: a
    #: lone call goes ahead of bulk posters, a flood of them shares the workers by this fraction.
    interactive_share: float = 0.5
    #: How the fair queue orders tenants and jobs that have been served equally: "arrival" (first
    #: come, first served: start-time fair queuing's own order) or "job_id" (by id, a random order,
    #: kept so that bench.latency can compare the two in one run).
    queue_order: str = "arrival"
    #: The URL clients reach the API's root at (https://host[:port][/prefix]), for the absolute
    #: URLs in answers; empty means answers carry relative URLs (the Host header is never trusted).
    public_url: str = ""
    #: API keys, separated by commas or spaces. With any key here or in api_keys_file, every route
    #: but /healthz, /readyz and the page's files needs `Authorization: Bearer <key>`, and a job is
    #: visible only to the key that made it (api/auth.py). Out of repr, so printed settings show no key.
    api_keys: str = field(default="", repr=False)
    #: A file of API keys, one a line (blank lines and `#` comments skipped), read at start-up.
    api_keys_file: str = ""
    #: Operators' keys (commas or spaces between them), with API keys on: only they read /metrics
    #: (every key's work, by design) and the worker names in /readyz; they are API keys too.
    operator_keys: str = field(default="", repr=False)
    #: Reuse results by content (posterq.jobs.reuse): a poster whose bytes the job's model already
    #: classified gets the stored result instead of being classified again. 0 classifies every
    #: poster (what the benchmarks that measure inference set); a job may say "reuse": false too.
    reuse_results: bool = True
    #: Tests only, never in production: a folder of gate files that hold a worker's batches and
    #: listings at known points (posterq.gate), so that a test waits on events, not on time.
    #: Empty (the default) turns every gate off.
    test_gate: str = ""

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        """Read POSTERQ_<FIELD> variables over the defaults; keyword overrides win over both."""
        environ = os.environ if environ is None else environ
        values = {}
        for spec in fields(cls):
            raw = environ.get("POSTERQ_" + spec.name.upper())
            if raw is None or raw == "":
                continue
            values[spec.name] = _parse(spec.name, raw, type(getattr(cls(), spec.name)))
        settings = cls(**values)
        if overrides:
            settings = settings.replace(**overrides)
        settings.validate()
        return settings

    @property
    def interactive_weight(self) -> float:
        """The interactive lane's weight against bulk's 1 that gives it interactive_share of the workers."""
        return self.interactive_share / (1 - self.interactive_share)

    @property
    def model_path(self) -> Path:
        """The bundle to load: POSTERQ_MODEL (a shipped bundle's name or a folder), else the default."""
        return model_folder(self.model)

    def replace(self, **changes) -> "Settings":
        """Return a copy with some fields changed (strings for data_roots and output_roots are split)."""
        for name in ("data_roots", "output_roots"):
            if isinstance(changes.get(name), str):
                changes[name] = _paths(changes[name])
            elif changes.get(name) is not None:
                changes[name] = tuple(Path(p).expanduser().resolve() for p in changes[name])
        return replace(self, **changes)

    def validate(self) -> None:
        """Refuse settings that cannot work, with a message naming the variable."""
        positive = ("batch_size", "invoke_size", "max_request_bytes", "max_posters_per_job",
                    "max_file_bytes", "max_zip_bytes", "max_zip_ratio", "result_ttl", "upload_ttl",
                    "max_redeliveries", "visibility_timeout", "restore_interval", "heartbeat_interval",
                    "analysis_timeout", "batch_time_limit", "sweep_interval", "max_queued_posters",
                    "request_timeout", "max_queued_posters_per_key", "job_window", "max_output_tries")
        for name in positive:
            if getattr(self, name) <= 0:
                raise PosterqError(f"POSTERQ_{name.upper()} must be positive", "bad_config")
        if self.max_batch_wait < 0 or self.threads < 0 or self.solo_threads < 0:
            raise PosterqError("POSTERQ_MAX_BATCH_WAIT, POSTERQ_THREADS and POSTERQ_SOLO_THREADS must not be "
                               "negative", "bad_config")
        if self.redis_memory_interval < 0:
            raise PosterqError("POSTERQ_REDIS_MEMORY_INTERVAL must not be negative", "bad_config")
        if not 0 <= self.redis_headroom < 1:
            raise PosterqError("POSTERQ_REDIS_HEADROOM must be at least 0 and below 1", "bad_config")
        if self.queue_order not in ("arrival", "job_id"):
            raise PosterqError("POSTERQ_QUEUE_ORDER must be arrival or job_id", "bad_config")
        if not 0 < self.interactive_share < 1:
            raise PosterqError("POSTERQ_INTERACTIVE_SHARE must be between 0 and 1", "bad_config")
        if self.public_url:
            url = urlsplit(self.public_url)
            if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
                raise PosterqError(f"POSTERQ_PUBLIC_URL={self.public_url!r} is not an "
                                   "http(s)://host[/prefix] URL", "bad_config")

    def resolve_data_path(self, path: str | os.PathLike) -> Path:
        """Resolve a path (symlinks included) and return it only if it lies under a data root."""
        if not self.data_roots:
            raise PosterqError("directory jobs are disabled: POSTERQ_DATA_ROOTS is not set", "no_data_roots")
        return _under(path, self.data_roots, "POSTERQ_DATA_ROOTS")

    def resolve_output_path(self, path: str | os.PathLike) -> Path:
        """Resolve an output file's path and return it only if its folder lies under an output root."""
        if not self.output_roots:
            raise PosterqError("output files are disabled: POSTERQ_OUTPUT_ROOTS is not set",
                               "no_output_roots")
        name = Path(_nameable(path)).name  # the whole path: _under below checks only the folder
        if not name or name in (".", ".."):
            raise PosterqError("the output names no file", "bad_path")
        # The folder is resolved, not the file: the file may not exist yet, and a symlink in its
        # place is replaced (os.replace), never followed.
        return _under(Path(os.fspath(path)).parent, self.output_roots, "POSTERQ_OUTPUT_ROOTS") / name


def lies_under(path: Path, roots) -> bool:
    """True when the resolved path is one of roots or lies inside one."""
    return any(path == root or root in path.parents for root in roots)


def _nameable(path: str | os.PathLike) -> str:
    # The path as text any file system could name, else PosterqError("bad_path").
    text = os.fspath(path)
    if "\x00" in text:
        raise PosterqError("the path contains a NUL byte", "bad_path")
    try:
        os.fsencode(text)
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON): no file can have that name
        raise PosterqError("the path is not text this filesystem can name", "bad_path") from None
    return text


def _under(path: str | os.PathLike, roots: tuple[Path, ...], variable: str) -> Path:
    """path resolved (symlinks included) when it lies under one of roots, else PosterqError."""
    text = _nameable(path)
    try:
        resolved = Path(text).expanduser().resolve()
    except RuntimeError:  # "~someone" who is not a user here, or a symlink loop
        raise PosterqError("the path names an unknown user's home, or loops on itself",
                           "bad_path") from None
    if lies_under(resolved, roots):
        return resolved
    # No path in the message: a worker's error (a file that became a symlink out of the roots)
    # reaches clients, and the server's absolute paths are not theirs to see.
    kind = "data" if variable == "POSTERQ_DATA_ROOTS" else "output"
    raise PosterqError(f"the path is not under a configured {kind} root ({variable})", "path_outside_roots")


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False,
             "off": False}


def _parse(name: str, raw: str, kind: type):
    try:
        if kind is bool:
            if raw.strip().lower() not in _BOOLEANS:
                raise ValueError(raw)
            return _BOOLEANS[raw.strip().lower()]
        if kind is tuple:
            return _paths(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        raise PosterqError(f"POSTERQ_{name.upper()}={raw!r} is not a {kind.__name__}", "bad_config") from None
    return raw
