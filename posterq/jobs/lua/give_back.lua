-- give_back: when a batch's claim is older than `stale_after` seconds (its task died, or its
-- Celery message was lost while Redis was down), gives its refs back to the head of their jobs'
-- ready lists, in one step so that no ref is ever in neither list. A ref whose attempts have
-- reached `max_attempts` is not given back, since its next claim would fail it: it stays in the
-- batch list, whose claim is stamped 0 (stale at once) for the sweep to fail it now. A ref whose
-- job is gone or final is dropped: nothing waits for it.
--
-- Redis Cluster: KEYS[8..10] are key prefixes, and the keys built from them at run time
-- are not declared; a cluster runs this only if every key of the prefix shares one hash slot
-- (a {hash tag} in Settings.key_prefix). See fair_queue.lua.
--
-- KEYS[1] claims      zset   task ids holding refs, by when they last claimed
-- KEYS[2] batch       list   the refs the task holds
-- KEYS[3] attempts    hash   ref -> how many deliveries have claimed it
-- KEYS[4] lanes       zset   lanes with waiting posters
-- KEYS[5] waiting     hash   posters waiting: total, by lane, by tenant
-- KEYS[6] arrivals    list   pushed to wake waiting claims
-- KEYS[7] order       hash   arrival numbers of the waiting tenants and jobs
-- KEYS[8] ready:      prefix of a job's ready list (the ref's job is known here only)
-- KEYS[9] lane:       prefix of a lane's tenants zset and of a tenant's jobs zset
-- KEYS[10] job:       prefix of a job's hash, items and upload bytes
-- ARGV[1] JSON object: batch_id, stale_after (seconds), max_attempts, final_statuses (JobStatus
--         values that are final), order_by_id (bool), suffixes (key name parts, Keys.suffixes)
-- Returns {ready, kept, loaded}: -1 and nothing else when the batch lives; else how many refs it
-- made ready, the refs kept to be failed and per kept ref 4 values (as claim.lua's loaded).
local claims, batch, attempts, lanes, waiting = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local arrivals, order = KEYS[6], KEYS[7]
local args = start(KEYS[8], KEYS[9], KEYS[10])
local final = set_of(args.final_statuses)

local claimed = redis.call('ZSCORE', claims, args.batch_id)
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
if claimed and now - tonumber(claimed) < tonumber(args.stale_after) then return {-1, {}, {}} end
local refs = redis.call('LRANGE', batch, 0, -1)
local ready, kept = 0, {}
for i = #refs, 1, -1 do
  local ref = refs[i]
  local job = parse_ref(ref)
  local state = redis.call('HMGET', job_key(job), 'status', 'lane', 'tenant')
  if state[1] and not final[state[1]] then
    if tonumber(redis.call('HGET', attempts, ref) or 0) >= tonumber(args.max_attempts) then
      table.insert(kept, 1, ref)
    else
      redis.call('LPUSH', ready_key(job), ref)
      local lane, tenant = state[2], state[3]
      queue(lanes, tenants_key(lane), jobs_key(lane, tenant), waiting, order, lane, tenant, job, 1)
      ready = ready + 1
    end
  else
    redis.call('HDEL', attempts, ref)
  end
end
if ready > 0 then arrived(arrivals) end
redis.call('DEL', batch)
if #kept > 0 then
  for _, ref in ipairs(kept) do redis.call('RPUSH', batch, ref) end
  redis.call('ZADD', claims, 0, args.batch_id)
else
  redis.call('ZREM', claims, args.batch_id)
end
return {ready, kept, load(kept)}
