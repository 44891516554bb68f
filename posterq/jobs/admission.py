"""Admission: how many posters a key, and the service, may have queued, counted before they queue.

A poster is queued from the moment it is admitted until its result is written (or its job is
cancelled): an upload's posters at submit, a directory job's as each chunk of its folder is
listed, in any pool, whether a worker for its model is live or not. The count is the ledger's
(posterq_jobs: total - done - failed of the jobs not final), so it cannot drift from what runs.

The rule, in numbers: each key may have `key_limit` posters queued, where
key_limit = min(POSTERQ_MAX_QUEUED_POSTERS_PER_KEY, POSTERQ_MAX_QUEUED_POSTERS // keys). The keys'
limits then sum to at most the global one, so no key's posters can take another key's room; the
global limit is checked too (it is what bounds a service without keys, where each job is a
tenant). Every admission (a job's uploads, a listing's chunk) is checked and written in one
database transaction under one lock (Ledger.admit), so racing admissions never overshoot.
"""

from dataclasses import dataclass

from posterq.config import Settings


@dataclass(frozen=True)
class Quota:
    """The limits one admission is checked against: its owner's (None: no key) and everybody's."""

    owner: str
    key_limit: int | None
    total_limit: int

    @property
    def most(self) -> int:
        """The most posters one submission can ever be admitted with: the key's limit, or the global one."""
        return min(self.total_limit, self.key_limit) if self.key_limit is not None else self.total_limit

    def room(self, mine: int, everyone: int) -> int:
        """Posters that may still be admitted, given those queued by the owner and by everyone."""
        room = self.total_limit - everyone
        if self.key_limit is not None:
            room = min(room, self.key_limit - mine)
        return max(0, room)


def key_limit(settings: Settings, keys: int) -> int:
    """Posters one key may have queued: its own limit, or its even part of the global one if less."""
    return max(1, min(settings.max_queued_posters_per_key, settings.max_queued_posters // max(1, keys)))


def quota(settings: Settings, owner: str, keys: int) -> Quota:
    """The quota of a submission by `owner` (a key's digest, "" without keys) among `keys` keys."""
    limit = key_limit(settings, keys) if owner else None
    return Quota(owner, limit, settings.max_queued_posters)
