"""The fair queue: which waiting posters a batch claims next, by lane, then tenant, then job.

Ready posters wait in one list per job. A claim takes them one at a time from the lane, then the
tenant (an API key, or the job itself where the service has no keys), then the job that has been
served least so far, counted in posters over its weight: start-time fair queuing at three levels.
So k busy tenants each get about 1/k of the workers whatever their number of jobs, a tenant's
jobs share its part equally, a weight of 2 gets twice the share, and the interactive lane
(`/analysis/`) is served first whenever it has not had more than its share. Something that starts
waiting enters its level at the lowest count there: it is served at once, and earns no credit
for the time it had nothing to ask. Equal counts are served in order of arrival (start-time fair
queuing's own order): a tenant's or job's member in its level is "<arrival number>:<name>", the
number INCR'd in Redis as it enters, so that one-poster calls are served first come, first served
rather than in the random order of their ids. Every step is one Lua script (posterq/jobs/lua/:
make_ready, drop, and the claims registry's claim and give_back), so a ref is always in exactly one
of a ready list or a batch list, and the counts of waiting posters always match the lists.
"""

import redis

from posterq.config import Settings
from posterq.jobs import scripts
from posterq.jobs.keys import Keys, Lane


class FairQueue:
    """The fair queue's scripts and figures over one Redis client."""

    def __init__(self, client: redis.Redis, settings: Settings, keys: Keys):
        self.client, self.settings, self.keys = client, settings, keys
        self._make_ready = scripts.register(client, "make_ready.lua")
        self._drop = scripts.register(client, "drop.lua")
        # Members are bare names, ordered by id among equals (Settings.queue_order "job_id").
        self.order_by_id = settings.queue_order == "job_id"

    def make_ready(self, pipe, job_id: str, lane: Lane, tenant: str, posters: int, weight: float = 1) -> None:
        """In pipe (a transaction that has pushed the job's refs): put the job in the queue."""
        keys = self.keys
        self._make_ready(
            keys=[keys.lanes, keys.lane(lane.value), keys.lane_jobs(lane.value, tenant), keys.waiting,
                  keys.weights, keys.arrivals, keys.queue_order],
            args=[scripts.args(lane=lane.value, tenant=tenant, job=job_id, posters=posters, weight=weight,
                               order_by_id=self.order_by_id)], client=pipe)

    def drop(self, job_id: str, lane: str, tenant: str) -> int:
        """Take a job's waiting posters out of the queue; return how many."""
        keys = self.keys
        return int(self._drop(keys=[keys.ready(job_id), keys.lanes, keys.lane(lane),
                                    keys.lane_jobs(lane, tenant), keys.waiting, keys.queue_order],
                              args=[scripts.args(lane=lane, tenant=tenant, job=job_id)]))

    def wait_for_arrivals(self, seconds: float) -> bool:
        """Block up to seconds for posters to become ready; True when some may have."""
        return self.client.blpop([self.keys.arrivals], seconds) is not None

    def waiting(self) -> dict[str, int]:
        """Posters waiting for a batch: "total", "lane:<lane>" and "tenant:<tenant>" counts."""
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.keys.waiting).items()}

    def waiting_in(self, lane: Lane) -> int:
        """Posters waiting for a batch in one lane."""
        return int(self.client.hget(self.keys.waiting, f"lane:{lane.value}") or 0)

    def depth(self) -> int:
        """Posters waiting for a batch, in all."""
        return int(self.client.hget(self.keys.waiting, "total") or 0)

    def waiting_jobs(self) -> dict[str, list[tuple[str, str]]]:
        """Jobs with posters waiting, by lane: (tenant, job id) pairs (two round trips in all)."""
        pipe = self.client.pipeline(transaction=False)
        for lane in Lane:
            pipe.zrange(self.keys.lane(lane.value), 0, -1)
        tenants = {lane.value: [_name_of(t) for t in found]
                   for lane, found in zip(Lane, pipe.execute(), strict=True)}
        for lane, names in tenants.items():
            for tenant in names:
                pipe.zrange(self.keys.lane_jobs(lane, tenant), 0, -1)
        jobs = iter(pipe.execute())
        return {lane: [(tenant, _name_of(job)) for tenant in names for job in next(jobs)]
                for lane, names in tenants.items()}


def _name_of(member: bytes) -> str:
    """A tenant's or job's name from its member in a fair-queue level ("<arrival>:<name>", or bare)."""
    text = member.decode()
    arrival, colon, name = text.partition(":")
    return name if colon and arrival.isdigit() else text
