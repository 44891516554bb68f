"""Optional API keys (POSTERQ_API_KEYS, POSTERQ_API_KEYS_FILE); without any, nothing is checked.

With keys, every route but /healthz, /readyz and the page's files needs
`Authorization: Bearer <key>` (401 otherwise), and a job is visible only to the key that made it:
its record names the key's SHA-256 digest, never the key, and any other key gets 404, as for a
job that does not exist. A presented key is hashed, then compared with every configured digest by
hmac.compare_digest, so the time taken tells nothing of how close a guess was or which key it
matched. No key is logged, stored or echoed in an error.

    python -c "import secrets; print(secrets.token_urlsafe(32))"   # a new key

In POSTERQ_API_KEYS_FILE a line may give a key's weight after it ("KEY 2"): its share of the
workers against keys of weight 1 when both have work waiting (posterq.jobs.fair_queue). It may also
give the key its own folders, each list separated by os.pathsep and each folder under a global
root of its kind: `output_roots=/srv/out/team-a` (where its jobs' output files may go) and
`data_roots=/srv/posters/team-a` (the folders its directory jobs may read):

    KEY 2 output_roots=/srv/out/team-a data_roots=/srv/posters/team-a:/srv/posters/shared

A key without them uses POSTERQ_OUTPUT_ROOTS and POSTERQ_DATA_ROOTS, which it then shares with
every such key; with keys on, only a key with its own output roots may `"overwrite": true`, so a
key in a shared root can never replace a file another key's job wrote.
"""

import hashlib
import hmac
import logging
import os
import re
from pathlib import Path

from flask import current_app, g, request

from posterq.api.exceptions import Unauthorized
from posterq.config import Settings, lies_under
from posterq.exceptions import PosterqError

log = logging.getLogger(__name__)

#: Endpoints anyone may call: the probes (orchestrators send no credentials) and the page with its
#: files, which must load before a person can type a key into it.
PUBLIC_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "page.index", "page.static"})
#: The shortest key accepted: a guessable key would make the rest pointless.
MIN_KEY_LENGTH = 16
# RFC 6750's token characters: what a Bearer header can carry without quoting.
_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_SEPARATORS = re.compile(r"[,\s]+")


def digest(key: str) -> str:
    """The SHA-256 hex digest a key is known by: what job records and comparisons use."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """The configured keys, held as digests only."""

    def __init__(self, digests, weights: dict[str, float] | None = None, operators=frozenset(),
                 roots: dict[str, dict[str, tuple[Path, ...]]] | None = None):
        self.digests = tuple(digests)
        self.weights = dict(weights or {})
        self.operators = frozenset(operators)
        # digest -> {"output_roots": (...), "data_roots": (...)}: a key's own folders, where it has them.
        self.roots = dict(roots or {})

    def weight(self, owner: str) -> float:
        """The share weight of a key's digest: its weight in the keys file, else 1."""
        return self.weights.get(owner, 1.0)

    @classmethod
    def from_settings(cls, settings: Settings) -> "ApiKeys":
        """The keys of POSTERQ_API_KEYS and POSTERQ_API_KEYS_FILE; a bad key or file stops start-up."""
        operators = _listed("POSTERQ_OPERATOR_KEYS", settings.operator_keys)
        keys, weights, roots = _listed("POSTERQ_API_KEYS", settings.api_keys) + operators, {}, {}
        if settings.api_keys_file:
            for where, key, rest in _read_file(Path(settings.api_keys_file).expanduser()):
                keys.append((where, key))
                weight, own = _key_fields(where, rest, settings)
                if weight:
                    weights[digest(key)] = _weight(where, weight)
                if own:
                    roots[digest(key)] = own
        for where, key in keys:
            # The message names the key's place, never the key.
            if len(key) < MIN_KEY_LENGTH or not _TOKEN.fullmatch(key):
                raise PosterqError(f"{where} is not a usable API key: it needs at least {MIN_KEY_LENGTH} "
                                   "characters of A-Z a-z 0-9 . _ ~ + / - (python -c \"import secrets; "
                                   "print(secrets.token_urlsafe(32))\" makes one)", "bad_config")
        return cls(dict.fromkeys(digest(key) for _, key in keys), weights,
                   {digest(key) for _, key in operators}, roots)

    @property
    def enabled(self) -> bool:
        """True when requests must carry a key."""
        return bool(self.digests)

    def match(self, key: str) -> str | None:
        """The digest of key when it is a configured key, else None; the same work either way."""
        presented, found = digest(key), None
        for known in self.digests:
            # No early exit: every configured key is compared, whichever matched.
            if hmac.compare_digest(presented, known):
                found = known
        return found


def _weight(where: str, text: str) -> float:
    # A key's share of the workers against other keys' (1 each unless the keys file says more).
    try:
        weight = float(text)
    except ValueError:
        weight = 0.0
    if not 0 < weight <= 1000:
        raise PosterqError(f"{where}: a key's weight must be a number above 0 and at most 1000", "bad_config")
    return weight


#: The per-key fields a keys-file line may give after the key ("name=value"), and the global roots
#: each must lie under: a key's roots narrow the service's, which the workers check again.
ROOT_FIELDS = ("output_roots", "data_roots")


def _key_fields(where: str, rest: str, settings: Settings) -> tuple[str, dict[str, tuple[Path, ...]]]:
    # What follows a key on its line: an optional bare weight, then name=value fields.
    weight, own = "", {}
    for word in rest.split():
        name, equals, value = word.partition("=")
        if not equals:
            if weight:  # "KEY 2 3": which is the weight? Refused rather than guessed.
                raise PosterqError(f"{where}: more than one weight ({weight!r}, {word!r})", "bad_config")
            weight = word
            continue
        if name not in ROOT_FIELDS:
            raise PosterqError(f"{where}: unknown field {name!r} (known: {', '.join(ROOT_FIELDS)})",
                               "bad_config")
        folders = tuple(Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part)
        allowed = getattr(settings, name)
        if not folders or not all(lies_under(folder, allowed) for folder in folders):
            raise PosterqError(f"{where}: {name} must name folders under POSTERQ_{name.upper()}",
                               "bad_config")
        own[name] = folders
    return weight, own


def _listed(variable: str, value: str) -> list[tuple[str, str]]:
    # (where, key) for each key of a variable that lists them, separated by commas or spaces.
    keys = _SEPARATORS.split(value.strip())
    return [(f"key {n} of {variable}", key) for n, key in enumerate(keys, 1) if key]


def _read_file(path: Path) -> list[tuple[str, str, str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PosterqError(f"POSTERQ_API_KEYS_FILE={path} cannot be read: {exc}", "bad_config") from None
    # (where, key, the rest of the line) for each "KEY", "KEY WEIGHT" or "KEY [WEIGHT] name=value..." line.
    keys = [(f"line {n} of {path}", *" ".join(line.split()).partition(" ")[::2])
            for n, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        # An empty file must not quietly leave the API open.
        raise PosterqError(f"POSTERQ_API_KEYS_FILE={path} holds no key", "bad_config")
    return keys


def register(app, keys: ApiKeys) -> None:
    """Check the key of every request to a route that is not public, before its view runs."""
    app.extensions["posterq"]["api_keys"] = keys
    if keys.enabled:
        log.info("API keys: %d configured; every route but %s needs one", len(keys.digests),
                 ", ".join(sorted(PUBLIC_ENDPOINTS)))

    @app.before_request
    def _authenticate():
        g.owner = ""
        if not keys.enabled:
            return
        credentials = request.authorization
        if request.endpoint in PUBLIC_ENDPOINTS:
            # No key needed; a valid one still says who asks (an operator sees /readyz's workers).
            if credentials is not None and credentials.type == "bearer" and credentials.token:
                g.owner = keys.match(credentials.token) or ""
            return
        if credentials is None or credentials.type != "bearer" or not credentials.token:
            raise Unauthorized("this service needs an API key: send the header Authorization: Bearer <key>",
                               "missing_api_key")
        owner = keys.match(credentials.token)
        if owner is None:
            raise Unauthorized("the API key is not valid", "invalid_api_key")
        g.owner = owner


def owner() -> str:
    """Who this request acts for: its key's digest, or "" where the service has no keys."""
    return g.get("owner", "")


def keys_enabled() -> bool:
    """True when the service has API keys."""
    return current_app.extensions["posterq"]["api_keys"].enabled


def key_count() -> int:
    """How many keys the service has (0 without keys): each may queue its part of the queue's limit."""
    return len(current_app.extensions["posterq"]["api_keys"].digests)


def operator() -> bool:
    """True when this request may see every key's work: no keys configured, or an operator's key."""
    keys = current_app.extensions["posterq"]["api_keys"]
    return not keys.enabled or owner() in keys.operators


def weight() -> float:
    """This request's key's share weight (1 where the service has no keys)."""
    return current_app.extensions["posterq"]["api_keys"].weight(owner())


def output_roots() -> tuple[Path, ...] | None:
    """The output roots the keys file gives this request's key, or None where it gives none."""
    return current_app.extensions["posterq"]["api_keys"].roots.get(owner(), {}).get("output_roots")


def data_roots() -> tuple[Path, ...] | None:
    """The data roots the keys file gives this request's key, or None where it gives none."""
    return current_app.extensions["posterq"]["api_keys"].roots.get(owner(), {}).get("data_roots")


def may_overwrite() -> bool:
    """True when this request may replace an output file: no keys, or a key with its own output roots."""
    return not keys_enabled() or output_roots() is not None


def may_see(job_owner: str) -> bool:
    """True when this request may see a job whose record names job_owner."""
    if not current_app.extensions["posterq"]["api_keys"].enabled:
        return True
    return hmac.compare_digest(job_owner, owner())
