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
rather than in the random order of their ids. Every step is one Lua script, so a ref is always in
exactly one of a ready list or a batch list, and the counts of waiting posters always match the lists.
"""

import redis

from posterq.config import Settings
from posterq.jobs.keys import Keys, Lane

# Shared by the scripts: enter puts a member into a fair-queue level (a zset) at the level's
# lowest score, unless it is there already; enter_in_order does so for a tenant or a job, whose
# member is "<arrival>:<name>" (arrival: a number from the order hash's "#arrivals" counter, 15
# digits, so that equal scores sort by arrival), and the order hash maps "<level>|<name>" to that
# member; leave takes one out again (the hash goes with its last member: numbers start again at 1
# when nothing waits). With `by_id` (Settings.queue_order "job_id", for benchmarks) the member is
# the bare name, a random order among equals. name_of reads either form. count keeps the
# waiting counts; queue makes n posters of a job (already on its ready list) claimable at every
# level; arrived wakes waiting claims.
_ENTER = """
local by_id = false
local function enter(level, member)
  if not redis.call('ZSCORE', level, member) then
    local lowest = redis.call('ZRANGE', level, 0, 0, 'WITHSCORES')
    redis.call('ZADD', level, lowest[2] or 0, member)
  end
end
local function enter_in_order(order, level, name)
  if by_id then return enter(level, name) end
  local field = level .. '|' .. name
  if redis.call('HEXISTS', order, field) == 1 then return end
  local member = string.format('%015d:%s', redis.call('HINCRBY', order, '#arrivals', 1), name)
  redis.call('HSET', order, field, member)
  enter(level, member)
end
local function leave(order, level, name, member)
  local field = level .. '|' .. name
  redis.call('ZREM', level, member or redis.call('HGET', order, field) or name)
  redis.call('HDEL', order, field)
  if redis.call('HLEN', order) == 1 then redis.call('DEL', order) end
end
local function name_of(member)
  return member and (string.match(member, '^%d+:(.*)$') or member)
end
local function count(waiting, lane, tenant, n)
  for _, field in ipairs({'total', 'lane:' .. lane, 'tenant:' .. tenant}) do
    if redis.call('HINCRBY', waiting, field, n) <= 0 then redis.call('HDEL', waiting, field) end
  end
end
local function queue(lanes, tenants, jobs, waiting, order, lane, tenant, job, n)
  enter_in_order(order, jobs, job)
  enter_in_order(order, tenants, tenant)
  enter(lanes, lane)
  count(waiting, lane, tenant, n)
end
local function arrived(arrivals)
  redis.call('LPUSH', arrivals, '1')
  redis.call('LTRIM', arrivals, 0, 63)
end
"""

# Makes a job's refs (already pushed on its ready list) claimable. KEYS: lanes, the lane's
# tenants, the tenant's jobs, waiting, weights, arrivals, order. ARGV: lane, tenant, job id,
# posters, tenant weight, "1" to order by id.
_READY = _ENTER + """
by_id = ARGV[6] == '1'
queue(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[7], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]))
if tonumber(ARGV[5]) ~= 1 then redis.call('HSET', KEYS[5], ARGV[2], ARGV[5]) end
arrived(KEYS[6])
"""

# Tops a batch list up to ARGV[1] refs, one poster at a time from the least served lane (ties go
# to the interactive lane), its least served tenant and that tenant's least served job; a level
# left with nothing waiting leaves the queue. A batch holding refs is stamped in the claims set,
# which the sweep reads to find batches whose task is gone. KEYS: batch list, claims set,
# claimed_at, lanes, waiting, weights, order. ARGV: size, ttl of the batch list, task id, the
# interactive lane, its weight, then the key templates (string.format) of a job's ready list, a
# lane's tenants and a tenant's jobs, then those of a job, its items and a blob, to read the
# claimed items in the same round trip. Returns {refs, loaded}: per ref 4 values (see Schedule.claim).
_CLAIM = _ENTER + """
local batch, lanes, waiting, weights, order = KEYS[1], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local interactive, interactive_weight = ARGV[4], tonumber(ARGV[5])
local want = tonumber(ARGV[1]) - redis.call('LLEN', batch)
local moved = 0
while moved < want do
  local first = redis.call('ZRANGE', lanes, 0, 1, 'WITHSCORES')
  if #first == 0 then break end
  local lane = first[1]
  if first[3] == interactive and tonumber(first[4]) == tonumber(first[2]) then lane = interactive end
  local tenants = string.format(ARGV[7], lane)
  local tenant_member = redis.call('ZRANGE', tenants, 0, 0)[1]
  local tenant = name_of(tenant_member)
  local jobs = tenant and string.format(ARGV[8], lane, tenant)
  local job_member = jobs and redis.call('ZRANGE', jobs, 0, 0)[1]
  local job = name_of(job_member)
  local ready = job and string.format(ARGV[6], job)
  if ready and redis.call('LMOVE', ready, batch, 'LEFT', 'RIGHT') then
    moved = moved + 1
    count(waiting, lane, tenant, -1)
    local lane_weight = 1
    if lane == interactive then lane_weight = interactive_weight end
    redis.call('ZINCRBY', lanes, 1 / lane_weight, lane)
    redis.call('ZINCRBY', tenants, 1 / tonumber(redis.call('HGET', weights, tenant) or 1), tenant_member)
    redis.call('ZINCRBY', jobs, 1, job_member)
  end
  -- Whatever has nothing left leaves its level (this also ends the loop on a stale entry).
  if not ready or redis.call('LLEN', ready) == 0 then
    if job then leave(order, jobs, job, job_member) end
    if not jobs or redis.call('ZCARD', jobs) == 0 then
      if tenant then leave(order, tenants, tenant, tenant_member) end
      if not tenant or redis.call('ZCARD', tenants) == 0 then redis.call('ZREM', lanes, lane) end
    end
  end
end
local refs = redis.call('LRANGE', batch, 0, -1)
if #refs > 0 then
  local time = redis.call('TIME')
  local now = string.format('%d.%06d', time[1], time[2])
  redis.call('ZADD', KEYS[2], now, ARGV[3])
  if moved > 0 then
    redis.call('EXPIRE', batch, ARGV[2])
    redis.call('SET', KEYS[3], now)
  end
end
-- What the worker reads next, in the same round trip: per ref its job's status and top_k, its
-- item and its upload bytes (ARGV[9..11]: the key templates of a job, its items, a blob).
local loaded = {}
for _, ref in ipairs(refs) do
  local job, index = string.match(ref, '^(.*):(%d+)$')
  local state = redis.call('HMGET', string.format(ARGV[9], job), 'status', 'top_k')
  loaded[#loaded + 1] = state[1]
  loaded[#loaded + 1] = state[2]
  loaded[#loaded + 1] = redis.call('HGET', string.format(ARGV[10], job), index)
  loaded[#loaded + 1] = redis.call('GET', string.format(ARGV[11], job, index))
end
return {refs, loaded}
"""

# Gives a batch's refs back to the head of their jobs' ready lists when its claim is older than
# ARGV[2] seconds (its task died, or its message was lost while Redis was down), in one step so
# that no ref is ever in neither list. Each ref's give-backs are counted; one given back more
# than ARGV[3] times goes to the poisoned list instead, to be failed rather than kill another
# worker. A ref whose job is gone or final is dropped: nothing waits for it.
# KEYS: claims set, batch list, deliveries, attempts hash, poisoned list, lanes, waiting, arrivals,
# order. ARGV: task id, stale after (s), most give-backs, then the key templates of a job's hash,
# its ready list, a lane's tenants and a tenant's jobs, the final statuses (three), "1" to order
# by id. Returns the number of refs made ready.
_GIVE_BACK = _ENTER + """
by_id = ARGV[11] == '1'
local claimed = redis.call('ZSCORE', KEYS[1], ARGV[1])
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
if claimed and now - tonumber(claimed) < tonumber(ARGV[2]) then return -1 end
local final = {[ARGV[8]] = true, [ARGV[9]] = true, [ARGV[10]] = true}
local refs = redis.call('LRANGE', KEYS[2], 0, -1)
local ready = 0
for i = #refs, 1, -1 do
  local job = string.match(refs[i], '^(.*):')
  local state = redis.call('HMGET', string.format(ARGV[4], job), 'status', 'lane', 'tenant')
  if state[1] and not final[state[1]] then
    if redis.call('HINCRBY', KEYS[4], refs[i], 1) > tonumber(ARGV[3]) then
      redis.call('RPUSH', KEYS[5], refs[i])
    else
      redis.call('LPUSH', string.format(ARGV[5], job), refs[i])
      local lane, tenant = state[2], state[3]
      queue(KEYS[6], string.format(ARGV[6], lane), string.format(ARGV[7], lane, tenant), KEYS[7],
            KEYS[9], lane, tenant, job, 1)
      ready = ready + 1
    end
  end
end
if ready > 0 then arrived(KEYS[8]) end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return ready
"""

# Drops a job's waiting posters (cancelled, or its submission failed) in one step: its ready
# list, its place in the queue and its count. KEYS: the job's ready list, lanes, the lane's
# tenants, the tenant's jobs, waiting, order. ARGV: lane, tenant, job id. Returns how many it dropped.
_DROP = _ENTER + """
local dropped = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1])
leave(KEYS[6], KEYS[4], ARGV[3])
if redis.call('ZCARD', KEYS[4]) == 0 then
  leave(KEYS[6], KEYS[3], ARGV[2])
  if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
end
if dropped > 0 then count(KEYS[5], ARGV[1], ARGV[2], -dropped) end
return dropped
"""


class Schedule:
    """The fair queue's scripts and figures over one Redis client."""

    def __init__(self, client: redis.Redis, settings: Settings, keys: Keys):
        self.client, self.settings, self.keys = client, settings, keys
        self._ready = client.register_script(_READY)
        self._claim = client.register_script(_CLAIM)
        self._give_back = client.register_script(_GIVE_BACK)
        self._drop = client.register_script(_DROP)
        # Templates for the keys a script picks at run time; Keys still builds every name.
        self._templates = [keys.ready("%s"), keys.lane("%s"), keys.lane_jobs("%s", "%s")]
        # "1": members are bare names, ordered by id among equals (Settings.queue_order "job_id").
        self._by_id = "1" if settings.queue_order == "job_id" else "0"

    def make_ready(self, pipe, job_id: str, lane: Lane, tenant: str, posters: int, weight: float = 1) -> None:
        """In pipe (a transaction that has pushed the job's refs): put the job in the queue."""
        keys = self.keys
        self._ready(keys=[keys.lanes, keys.lane(lane.value), keys.lane_jobs(lane.value, tenant), keys.waiting,
                          keys.weights, keys.arrivals, keys.queue_order],
                    args=[lane.value, tenant, job_id, posters, weight, self._by_id], client=pipe)

    def claim(self, batch_id: str, size: int) -> tuple[list[bytes], list]:
        """Top the batch list up to size refs, fairly; return (every ref it holds, loaded).

        loaded holds per ref its job's status and top_k, its item and its bytes (4 values a ref),
        read in the same round trip.
        """
        keys = self.keys
        reads = [keys.job("%s"), keys.items("%s"), keys.blob("%s", "%s")]
        return self._claim(
            keys=[keys.batch(batch_id), keys.claims, keys.claimed_at, keys.lanes, keys.waiting, keys.weights,
                  keys.queue_order],
            args=[size, self.settings.result_ttl, batch_id, Lane.INTERACTIVE.value,
                  self.settings.interactive_weight, *self._templates, *reads])

    def give_back(self, batch_id: str, older_than: float, final: list[str]) -> int:
        """Put a stale batch's refs back at the head of their jobs' lists; -1 when the batch lives."""
        keys = self.keys
        return int(self._give_back(
            keys=[keys.claims, keys.batch(batch_id), keys.deliveries(batch_id), keys.attempts, keys.poisoned,
                  keys.lanes, keys.waiting, keys.arrivals, keys.queue_order],
            args=[batch_id, older_than, self.settings.max_redeliveries, keys.job("%s"),
                  *self._templates, *final, self._by_id]))

    def drop(self, job_id: str, lane: str, tenant: str) -> int:
        """Take a job's waiting posters out of the queue; return how many."""
        keys = self.keys
        return int(self._drop(keys=[keys.ready(job_id), keys.lanes, keys.lane(lane),
                                    keys.lane_jobs(lane, tenant), keys.waiting, keys.queue_order],
                              args=[lane, tenant, job_id]))

    def wait_for_arrivals(self, seconds: float) -> bool:
        """Block up to seconds for posters to become ready; True when some may have."""
        return self.client.blpop([self.keys.arrivals], seconds) is not None

    def waiting(self) -> dict[str, int]:
        """Posters waiting for a batch: "total", "lane:<lane>" and "tenant:<tenant>" counts."""
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.keys.waiting).items()}

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
