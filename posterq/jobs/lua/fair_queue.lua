-- The fair queue's shared functions, prepended to each command file that moves posters in or out
-- of the queue (posterq/jobs/scripts.py). They read no KEYS or ARGV themselves: each command names
-- its keys and arguments in its own header and passes them in.
--
-- Levels: the lanes zset, a lane's tenants zset, a tenant's jobs zset (posterq/jobs/keys.py draws
-- the layout). A tenant's or job's member in its level is "<arrival>:<name>", the arrival number
-- counted in the order hash ("#arrivals", 15 digits so that equal scores sort by arrival), and
-- the order hash maps "<level key>|<name>" to that member; with by_id (Settings.queue_order
-- "job_id", for benchmarks) the member is the bare name, a random order among equals.
--
-- Redis Cluster: the keys a command picks at run time (a lane's tenants, a tenant's jobs, a job's
-- ready list, hash, items and bytes) are built here from the key PREFIXES the command receives in
-- KEYS, so a cluster can run these scripts only if every key of one prefix ("posterq", or a model
-- pool's "posterq:model:<pool>") hashes to one slot, that is with a {hash tag} in the prefix.

local by_id = false

-- Names of the keys picked at run time, from the prefixes in KEYS and the suffixes in the
-- arguments (both built by posterq/jobs/keys.py); set by the command before use.
local names = {}
local function ready_key(job) return names.ready .. job end
local function tenants_key(lane) return names.lane .. lane end
local function jobs_key(lane, tenant) return names.lane .. lane .. names.suffixes.lane_tenant .. tenant end
local function job_key(job) return names.job .. job end
local function items_key(job) return names.job .. job .. names.suffixes.items end
local function blob_key(job, index) return names.job .. job .. names.suffixes.blob .. index end

-- A ref is "<job id>:<index>" (posterq.jobs.keys.ref).
local function parse_ref(ref)
  local job, index = string.match(ref, '^(.*):(%d+)$')
  return job, index
end

-- A set of the final statuses named in the arguments (JobStatus, final ones).
local function set_of(list)
  local set = {}
  for _, value in ipairs(list) do set[value] = true end
  return set
end

-- Puts a member into a level at the level's lowest score, unless it is there already: something
-- that starts waiting is served at once but earns no credit for the time it had nothing to ask.
local function enter(level, member)
  if not redis.call('ZSCORE', level, member) then
    local lowest = redis.call('ZRANGE', level, 0, 0, 'WITHSCORES')
    redis.call('ZADD', level, lowest[2] or 0, member)
  end
end

-- Puts a tenant or a job into its level under its arrival number.
local function enter_in_order(order, level, name)
  if by_id then return enter(level, name) end
  local field = level .. '|' .. name
  if redis.call('HEXISTS', order, field) == 1 then return end
  local member = string.format('%015d:%s', redis.call('HINCRBY', order, '#arrivals', 1), name)
  redis.call('HSET', order, field, member)
  enter(level, member)
end

-- Takes a tenant or a job out of its level; the order hash goes with its last member, so that
-- arrival numbers start again at 1 when nothing waits.
local function leave(order, level, name, member)
  local field = level .. '|' .. name
  redis.call('ZREM', level, member or redis.call('HGET', order, field) or name)
  redis.call('HDEL', order, field)
  if redis.call('HLEN', order) == 1 then redis.call('DEL', order) end
end

-- A tenant's or job's name from its member ("<arrival>:<name>", or bare).
local function name_of(member)
  return member and (string.match(member, '^%d+:(.*)$') or member)
end

-- Keeps the waiting counts: in total, by lane and by tenant (a count at 0 leaves the hash).
local function count(waiting, lane, tenant, n)
  for _, field in ipairs({'total', 'lane:' .. lane, 'tenant:' .. tenant}) do
    if redis.call('HINCRBY', waiting, field, n) <= 0 then redis.call('HDEL', waiting, field) end
  end
end

-- Makes n posters of a job (already on its ready list) claimable at every level: the lanes zset,
-- the lane's tenants zset, the tenant's jobs zset.
local function queue(lanes, tenants, jobs, waiting, order, lane, tenant, job, n)
  enter_in_order(order, jobs, job)
  enter_in_order(order, tenants, tenant)
  enter(lanes, lane)
  count(waiting, lane, tenant, n)
end

-- Wakes claims that wait for stragglers (a short list: only its being pushed matters).
local function arrived(arrivals)
  redis.call('LPUSH', arrivals, '1')
  redis.call('LTRIM', arrivals, 0, 63)
end

-- What a worker reads of each ref, in the claim's own round trip: its job's status and top_k, its
-- item and its upload bytes (4 values a ref; false where there is none). Three reads a job, not
-- four a ref: a batch's refs mostly come from a few jobs.
local function load(refs)
  local by_job, jobs = {}, {}
  for i, ref in ipairs(refs) do
    local job, index = parse_ref(ref)
    if not by_job[job] then
      by_job[job] = {positions = {}, indexes = {}, blobs = {}}
      jobs[#jobs + 1] = job
    end
    local group = by_job[job]
    group.positions[#group.positions + 1] = i
    group.indexes[#group.indexes + 1] = index
    group.blobs[#group.blobs + 1] = blob_key(job, index)
  end
  local loaded = {}
  for _, job in ipairs(jobs) do
    local group = by_job[job]
    local state = redis.call('HMGET', job_key(job), 'status', 'top_k')
    local items = redis.call('HMGET', items_key(job), unpack(group.indexes))
    local blobs = redis.call('MGET', unpack(group.blobs))
    for n, i in ipairs(group.positions) do
      local at = 4 * (i - 1)
      loaded[at + 1], loaded[at + 2], loaded[at + 3], loaded[at + 4] = state[1], state[2], items[n], blobs[n]
    end
  end
  return loaded
end

-- Reads the named arguments (ARGV[1], a JSON object) and the key prefixes of a command that
-- picks keys at run time (nil for one whose every key is in KEYS); returns the arguments.
local function start(ready_prefix, lane_prefix, job_prefix)
  local args = cjson.decode(ARGV[1])
  names.ready, names.lane, names.job = ready_prefix, lane_prefix, job_prefix
  names.suffixes = args.suffixes or {}
  by_id = args.order_by_id == true
  return args
end
