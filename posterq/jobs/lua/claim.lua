-- claim: tops a batch list up to `size` refs, one poster at a time from the least served lane
-- (ties go to the interactive lane), its least served tenant and that tenant's least served job
-- (start-time fair queuing at three levels); a level left with nothing waiting leaves the queue.
-- Counts one attempt for every ref the delivery holds: on its first claim every ref in the list
-- (those an earlier delivery of the same task claimed included), on a top-up only the refs it
-- moves. A batch holding refs is stamped in the claims set, which the sweep reads to find
-- batches whose task is gone. Reads the claimed items in the same round trip.
--
-- Redis Cluster: KEYS[10..12] are key prefixes, and the keys built from them at run time
-- are not declared; a cluster runs this only if every key of the prefix shares one hash slot
-- (a {hash tag} in Settings.key_prefix). See fair_queue.lua.
--
-- KEYS[1]  batch       list   the refs this task (its Celery task id) holds
-- KEYS[2]  claims      zset   task ids holding refs, by when they last claimed (Redis time)
-- KEYS[3]  claimed_at  string when any batch last claimed a ref (the sweep's sign of life)
-- KEYS[4]  attempts    hash   ref -> how many deliveries have claimed it
-- KEYS[5]  stats       hash   counters (args.redeliveries_field: deliveries that found refs held)
-- KEYS[6]  lanes       zset   lanes with waiting posters
-- KEYS[7]  waiting     hash   posters waiting: total, by lane, by tenant
-- KEYS[8]  weights     hash   tenant -> weight, where it is not 1
-- KEYS[9]  order       hash   arrival numbers of the waiting tenants and jobs
-- KEYS[10] ready:      prefix of a job's ready list (the job is picked here)
-- KEYS[11] lane:       prefix of a lane's tenants zset and of a tenant's jobs zset
-- KEYS[12] job:        prefix of a job's hash, items and upload bytes (read for the claimed refs)
-- ARGV[1]  JSON object: batch_id, size, ttl (of the batch list, seconds), first (bool: the
--          delivery's first claim), interactive (the lane), interactive_weight,
--          redeliveries_field, order_by_id (bool), suffixes (key name parts, Keys.suffixes)
-- Returns {refs, loaded, attempts}: every ref the batch holds, per ref 4 values (its job's status
-- and top_k, its item, its upload bytes) and per ref its attempts so far.
local batch, claims, claimed_at, attempts, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local lanes, waiting, weights, order = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local args = start(KEYS[10], KEYS[11], KEYS[12])
local interactive, interactive_weight = args.interactive, tonumber(args.interactive_weight)

local held = redis.call('LLEN', batch)
local want = tonumber(args.size) - held
local moved = 0
while moved < want do
  local first = redis.call('ZRANGE', lanes, 0, 1, 'WITHSCORES')
  if #first == 0 then break end
  local lane = first[1]
  if first[3] == interactive and tonumber(first[4]) == tonumber(first[2]) then lane = interactive end
  local tenants = tenants_key(lane)
  local tenant_member = redis.call('ZRANGE', tenants, 0, 0)[1]
  local tenant = name_of(tenant_member)
  local jobs = tenant and jobs_key(lane, tenant)
  local job_member = jobs and redis.call('ZRANGE', jobs, 0, 0)[1]
  local job = name_of(job_member)
  local ready = job and ready_key(job)
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
local counts = {}
local redelivered = false
for i, ref in ipairs(refs) do
  if args.first or i > held then
    counts[i] = redis.call('HINCRBY', attempts, ref, 1)
    -- A ref held from an earlier delivery that did not hand it back (Claims.forgive).
    if i <= held and counts[i] > 1 then redelivered = true end
  else
    counts[i] = tonumber(redis.call('HGET', attempts, ref) or 0)
  end
end
if redelivered then redis.call('HINCRBY', stats, args.redeliveries_field, 1) end
if #refs > 0 then
  local time = redis.call('TIME')
  local now = string.format('%d.%06d', time[1], time[2])
  redis.call('ZADD', claims, now, args.batch_id)
  if moved > 0 then
    redis.call('EXPIRE', batch, args.ttl)
    redis.call('SET', claimed_at, now)
  end
end
return {refs, load(refs), counts}
