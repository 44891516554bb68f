-- drop: takes a job's waiting posters out of the fair queue (cancelled, or its submission failed)
-- in one step: its ready list, its place at every level, and its count.
--
-- KEYS[1] ready      list   the job's ready refs
-- KEYS[2] lanes      zset   lanes with waiting posters
-- KEYS[3] tenants    zset   the lane's tenants with waiting posters
-- KEYS[4] jobs       zset   the tenant's jobs with waiting posters in the lane
-- KEYS[5] waiting    hash   posters waiting: total, by lane, by tenant
-- KEYS[6] order      hash   arrival numbers of the waiting tenants and jobs
-- ARGV[1] JSON object: lane, tenant, job (id)
-- Returns how many posters it dropped.
local ready, lanes, tenants, jobs, waiting, order = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local args = start()

local dropped = redis.call('LLEN', ready)
redis.call('DEL', ready)
leave(order, jobs, args.job)
if redis.call('ZCARD', jobs) == 0 then
  leave(order, tenants, args.tenant)
  if redis.call('ZCARD', tenants) == 0 then redis.call('ZREM', lanes, args.lane) end
end
if dropped > 0 then count(waiting, args.lane, args.tenant, -dropped) end
return dropped
