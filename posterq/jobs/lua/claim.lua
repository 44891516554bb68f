-- claim: tops a batch list up to `size` refs, one poster at a time from the least served lane
-- (ties go to the interactive lane), its least served tenant and that tenant's least served job
-- (start-time fair queuing at three levels); a level left with nothing waiting leaves the queue.
-- The picks are made on the levels' scores read once into the script, so that a batch costs a few
-- commands per job and level it touches, not a dozen per poster; the order of picks and the
-- scores written back are those of one ZINCRBY a poster (the same additions, the same ties).
-- A batch that takes an interactive poster stops at `interactive_size` (or what it holds): a
-- one-poster call does not wait for a bulk-sized invoke. Counts one attempt for every ref the
-- delivery holds: on its first claim every ref in the list (those an earlier delivery of the
-- same task claimed included), on a top-up only the refs it moves. A batch holding refs is
-- stamped in the claims set, which the sweep reads to find batches whose task is gone. Reads
-- the claimed items in the same round trip.
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
-- ARGV[1]  JSON object: batch_id, size, interactive_size (the most a batch holding an
--          interactive poster takes), ttl (of the batch list, seconds), first (bool: the
--          delivery's first claim), interactive (the lane), interactive_weight,
--          redeliveries_field, order_by_id (bool), suffixes (key name parts, Keys.suffixes)
-- Returns {refs, loaded, attempts, short}: every ref the batch holds, per ref 4 values (its
-- job's status and top_k, its item, its upload bytes), per ref its attempts so far, and 1 when
-- the batch stopped at interactive_size while bulk posters wait (a token is owed for them).
local batch, claims, claimed_at, attempts, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local lanes, waiting, weights, order = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local args = start(KEYS[10], KEYS[11], KEYS[12])
local interactive, interactive_weight = args.interactive, tonumber(args.interactive_weight)
local size = tonumber(args.size)
local interactive_size = tonumber(args.interactive_size or args.size)

local held = redis.call('LLEN', batch)
local want = size - held
-- Members of a level beyond those read could only be picked after every member read had been
-- picked or had left: reading a few more than the batch can take is enough.
local span = want + 2

-- A level read into the script: its key, its lowest members {member, score, dirty} and whether
-- they are all of it.
local function read(key, count)
  local flat = redis.call('ZRANGE', key, 0, count - 1, 'WITHSCORES')
  local level = {key = key, entries = {}, complete = #flat < 2 * count}
  for i = 1, #flat, 2 do
    level.entries[#level.entries + 1] = {member = flat[i], score = tonumber(flat[i + 1])}
  end
  return level
end

-- Byte order, as a sorted set orders equal scores (Lua's own string order follows the locale).
local function bytes_before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The entry ZRANGE would list first; at equal scores `preferred` goes first (the interactive lane).
local function lowest(level, preferred)
  local best
  for _, entry in ipairs(level.entries) do
    if not best or entry.score < best.score
        or (entry.score == best.score and best.member ~= preferred
            and (entry.member == preferred or bytes_before(entry.member, best.member))) then
      best = entry
    end
  end
  return best
end

local function drop_entry(level, entry)
  for i, other in ipairs(level.entries) do
    if other == entry then table.remove(level.entries, i) return end
  end
end

-- True when nothing of the level is left; read again if only what was read is gone.
local function empty(level)
  if #level.entries > 0 then return false end
  if level.complete then return true end
  local fresh = read(level.key, span)
  level.entries, level.complete = fresh.entries, fresh.complete
  return #level.entries == 0
end

local lane_level = read(lanes, 8)
local tenant_levels, job_levels, tenant_weights, left, taken = {}, {}, {}, {}, {}
local picks, fell = {}, {}
local moved, with_interactive, capped = 0, false, false

local function fall(field, n) fell[field] = (fell[field] or 0) + n end

while moved < want do
  local lane_entry = lowest(lane_level, interactive)
  if not lane_entry then break end
  local lane = lane_entry.member
  tenant_levels[lane] = tenant_levels[lane] or read(tenants_key(lane), span)
  local tenants = tenant_levels[lane]
  local tenant_entry = lowest(tenants)
  local tenant = tenant_entry and name_of(tenant_entry.member)
  local jobs
  if tenant then
    local jobs_name = jobs_key(lane, tenant)
    job_levels[jobs_name] = job_levels[jobs_name] or read(jobs_name, span)
    jobs = job_levels[jobs_name]
  end
  local job_entry = jobs and lowest(jobs)
  local job = job_entry and name_of(job_entry.member)
  if job and left[job] == nil then left[job] = redis.call('LLEN', ready_key(job)) end
  if job and left[job] > 0 then
    left[job] = left[job] - 1
    taken[job] = (taken[job] or 0) + 1
    picks[#picks + 1] = job
    moved = moved + 1
    fall('total', 1)
    fall('lane:' .. lane, 1)
    fall('tenant:' .. tenant, 1)
    local lane_weight = 1
    if lane == interactive then
      lane_weight = interactive_weight
      with_interactive = true
    end
    if tenant_weights[tenant] == nil then
      tenant_weights[tenant] = tonumber(redis.call('HGET', weights, tenant) or 1)
    end
    lane_entry.score = lane_entry.score + 1 / lane_weight
    tenant_entry.score = tenant_entry.score + 1 / tenant_weights[tenant]
    job_entry.score = job_entry.score + 1
    lane_entry.dirty, tenant_entry.dirty, job_entry.dirty = true, true, true
    if with_interactive and want > interactive_size - held then
      want = math.max(moved, interactive_size - held)
      capped = true
    end
  end
  -- Whatever has nothing left leaves its level (this also ends the loop on a stale entry).
  if not job or left[job] == 0 then
    if job then
      leave(order, jobs.key, job, job_entry.member)
      drop_entry(jobs, job_entry)
    end
    if not jobs or empty(jobs) then
      if tenant then
        leave(order, tenants.key, tenant, tenant_entry.member)
        drop_entry(tenants, tenant_entry)
      end
      if not tenant or empty(tenants) then
        redis.call('ZREM', lanes, lane)
        drop_entry(lane_level, lane_entry)
      end
    end
  end
end

-- Write back what the picks did: the refs moved in the order picked, the scores, the counts.
if moved > 0 then
  local moving = {}
  for job, n in pairs(taken) do moving[job] = redis.call('LPOP', ready_key(job), n) end
  local cursor, refs_moved = {}, {}
  for i, job in ipairs(picks) do
    cursor[job] = (cursor[job] or 0) + 1
    refs_moved[i] = moving[job][cursor[job]]
  end
  redis.call('RPUSH', batch, unpack(refs_moved))
  local levels = {lane_level}
  for _, level in pairs(tenant_levels) do levels[#levels + 1] = level end
  for _, level in pairs(job_levels) do levels[#levels + 1] = level end
  for _, level in ipairs(levels) do
    for _, entry in ipairs(level.entries) do
      if entry.dirty then redis.call('ZADD', level.key, entry.score, entry.member) end
    end
  end
  for field, n in pairs(fell) do
    if redis.call('HINCRBY', waiting, field, -n) <= 0 then redis.call('HDEL', waiting, field) end
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
-- Tokens were counted for full batches: one stopped short for an interactive poster while bulk
-- posters wait leaves their share to a token the worker sends.
local short = 0
if capped then
  for _, entry in ipairs(lane_level.entries) do
    if entry.member ~= interactive then short = 1 end
  end
end
return {refs, load(refs), counts, short}
