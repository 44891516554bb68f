"""Results reused by content: a poster whose bytes a model already classified gets that result again.

A result row names the bytes it was made from (the poster's sha256) and the model that made it
(name, version and the sha256 of the model file). At intake (an upload, or a chunk of a folder's
listing) each poster's bytes are hashed, and a poster whose hash the job's model already
classified OK, at the job's top_k, is written at once as a reused result, through the ledger like
any other result: it is neither queued, decoded nor classified. The same bytes twice in one intake
are classified once: the later items are twins, left out of the queue, and get the first's result
in the same transaction as it (Claims.write_results calls twins()).

Reuse needs the job's model known before any worker runs: a job naming a model gets the one the
live workers of its pool hold, a default job the one every live worker holds. With none, or two
(a rolling upgrade), nothing is reused: a result of another model is never passed off as this one's.
"""

import time
from dataclasses import dataclass, field
from typing import NamedTuple

from posterq.jobs.database import Database
from posterq.jobs.keys import ResultStatus
from posterq.jobs.pools import DEFAULT_POOL, pools_of

#: Hashes per lookup query: well under SQLite's 999 parameters, and a short IN list for PostgreSQL.
LOOKUP_CHUNK = 500
_OK = ResultStatus.OK.value


class Identity(NamedTuple):
    """A model as results are reused by: its name, version and the sha256 of its file."""

    name: str
    version: str
    sha256: str


def identity_of(workers: dict[str, dict], pool: str = DEFAULT_POOL) -> Identity | None:
    """The one model the live workers of `pool` hold (from their heartbeats), or None for none or several."""
    found = set()
    for info in workers.values():
        model = info.get("model")
        if pool != DEFAULT_POOL and (not model or pool not in pools_of(model)[1:]):
            continue  # this worker does not serve the pool
        found.add((model, info.get("model_sha256")))
    if len(found) != 1:
        return None
    model, digest = found.pop()
    if not model or not digest:  # a worker without a usable bundle, or one that does not say its hash
        return None
    name, _, version = model.partition("@")
    return Identity(name, version, digest)


@dataclass
class Plan:
    """What intake does with each poster of a list (indexes within it): reuse, wait for a twin, or queue."""

    identity: Identity
    hashes: list[str | None]
    reused: dict[int, dict] = field(default_factory=dict)  # index -> the stored result
    twins: dict[int, int] = field(default_factory=dict)  # index -> the index of the first with its bytes
    genres: list[str] | None = None  # the model's genres in output order, from a job that used it

    def queued(self) -> list[int]:
        """The indexes to classify: neither reused nor a twin."""
        return [i for i in range(len(self.hashes)) if i not in self.reused and i not in self.twins]

    def marked(self, items: list[dict], offset: int = 0) -> list[dict]:
        """The items, each twin given `twin_of`, its first's index in the job (item i is index offset + i)."""
        return [{**item, "twin_of": offset + self.twins[i]} if i in self.twins else item
                for i, item in enumerate(items)]


class Reuse:
    """The lookup of stored results by content and model, and the results it writes."""

    def __init__(self, database: Database):
        self.db = database

    def plan(self, hashes: list[str | None], identity: Identity, top_k: int | None) -> Plan:
        """Which of the posters (their hashes, None when unknown) reuse a stored result or a twin's."""
        plan = Plan(identity, list(hashes))
        stored, plan.genres = self.lookup(identity, top_k, {h for h in hashes if h})
        first: dict[str, int] = {}
        for index, digest in enumerate(hashes):
            if not digest:
                continue
            if digest in stored:
                plan.reused[index] = stored[digest]
            elif digest in first:
                plan.twins[index] = first[digest]
            else:
                first[digest] = index
        return plan

    def lookup(self, identity: Identity, top_k: int | None, hashes: set[str]
               ) -> tuple[dict[str, dict], list[str] | None]:
        """Stored OK results of `identity` at `top_k` by poster hash, and the model's genres (or None)."""
        found: dict[str, dict] = {}
        genres = None
        ordered = sorted(hashes)
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            chunk = ordered[start:start + LOOKUP_CHUNK]
            with self.db.transaction() as tx:
                rows = tx.execute(*self._query(chunk, identity, top_k)).fetchall()
            for digest, row_genres, scores, worker, model in rows:
                found.setdefault(digest, {"genres": self.db.from_json(row_genres) or [],
                                          "scores": self.db.from_json(scores) or {}, "worker": worker})
                genres = genres or (self.db.from_json(model) or {}).get("genres")
        return found, genres

    def _query(self, hashes: list[str], identity: Identity, top_k: int | None) -> tuple[str, tuple]:
        # One stored row per hash, however many results share it (a poster labelled in many jobs):
        # the lookup reads as many rows as the intake has posters, never the whole history. The
        # job's top_k too: genres are cut to at most k (posterq.label_rule).
        where = (f"r.model_sha256 = %s AND r.model_name = %s AND r.model_version = %s AND r.status = '{_OK}' "
                 "AND j.top_k = %s")
        model = (identity.sha256, identity.name, identity.version, top_k or 0)
        columns = ("r.genres, r.scores, r.worker, j.model FROM posterq_results r "
                   "JOIN posterq_jobs j ON j.id = r.job_id")
        if self.db.dialect == "postgresql":
            return (f"SELECT h.sha256, found.* FROM unnest(%s::text[]) AS h(sha256) CROSS JOIN LATERAL "
                    f"(SELECT {columns} WHERE r.sha256 = h.sha256 AND {where} LIMIT 1) AS found",
                    (list(hashes), *model))
        # SQLite takes a bare column beside GROUP BY from one row of its group.
        marks = ", ".join(["%s"] * len(hashes))
        return (f"SELECT r.sha256, {columns} WHERE r.sha256 IN ({marks}) AND {where} GROUP BY r.sha256",
                (*hashes, *model))

    def outcomes(self, job_id: str, names: list[str], plan: Plan, offset: int = 0
                 ) -> list[tuple[str, int, dict, str]]:
        """The reused results of a plan as outcomes for Ledger.write (item i is index offset + i)."""
        return [(job_id, offset + i, {"index": offset + i, "name": names[i], "path": names[i],
                                      "genres": stored["genres"], "scores": stored["scores"], "error": None,
                                      "model_version": plan.identity.version, "worker": stored["worker"],
                                      "reused": True, "sha256": plan.hashes[i]}, _OK)
                for i, stored in sorted(plan.reused.items())]

    def model(self, plan: Plan) -> dict:
        """The model reused results are written under (Ledger.write's model)."""
        identity = plan.identity
        model = {"name": identity.name, "version": identity.version, "sha256": identity.sha256}
        return {**model, "genres": plan.genres} if plan.genres else model

    def write(self, ledger, job_id: str, names: list[str], plan: Plan, offset: int = 0) -> list:
        """Write a plan's reused results through the ledger; return the jobs that finished (Finished)."""
        outcomes = self.outcomes(job_id, names, plan, offset)
        if not outcomes:
            return []
        return ledger.write(outcomes, self.model(plan), time.time())[1]

    def twins(self, outcomes: list[tuple[str, int, dict, str]]) -> list[tuple[str, int, dict, str]]:
        """Outcomes for the pending twins of these outcomes' items: each a copy of its first's, reused."""
        if not outcomes:
            return []
        by_ref = {(job_id, index): (result, outcome) for job_id, index, result, outcome in outcomes}
        jobs = sorted({job_id for job_id, *_ in outcomes})
        indexes = sorted({index for _, index, _, _ in outcomes})
        with self.db.transaction() as tx:
            # Pending twins: items without a result row yet (posterq.jobs.ledger).
            rows = tx.execute(
                "SELECT job_id, idx, name, twin_of FROM posterq_items AS items WHERE twin_of IS NOT NULL "
                f"AND job_id IN ({', '.join(['%s'] * len(jobs))}) "
                f"AND twin_of IN ({', '.join(['%s'] * len(indexes))}) AND NOT EXISTS (SELECT 1 FROM "
                "posterq_results AS results WHERE results.job_id = items.job_id AND results.idx = items.idx)",
                (*jobs, *indexes)).fetchall()
        copies = []
        for job_id, index, name, first in rows:
            if (job_id, first) not in by_ref:
                continue
            result, outcome = by_ref[(job_id, first)]
            copies.append((job_id, int(index), {**result, "index": int(index), "name": name, "path": name,
                                                "reused": True}, outcome))
        return copies
