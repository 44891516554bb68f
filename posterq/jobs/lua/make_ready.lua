-- make_ready: makes a job's refs, already pushed on its ready list, claimable in the fair queue.
-- Runs inside the MULTI/EXEC that pushed them (FairQueue.make_ready).
--
-- KEYS[1] lanes      zset   lanes with waiting posters
-- KEYS[2] tenants    zset   the lane's tenants with waiting posters
-- KEYS[3] jobs       zset   the tenant's jobs with waiting posters in the lane
-- KEYS[4] waiting    hash   posters waiting: total, by lane, by tenant
-- KEYS[5] weights    hash   tenant -> weight, where it is not 1
-- KEYS[6] arrivals   list   pushed to wake waiting claims
-- KEYS[7] order      hash   arrival numbers of the waiting tenants and jobs
-- ARGV[1] JSON object: lane, tenant, job (id), posters (how many were pushed), weight (the
--         tenant's), order_by_id (bool)
local lanes, tenants, jobs, waiting = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local weights, arrivals, order = KEYS[5], KEYS[6], KEYS[7]
local args = start()

queue(lanes, tenants, jobs, waiting, order, args.lane, args.tenant, args.job, args.posters)
if args.weight ~= 1 then redis.call('HSET', weights, args.tenant, args.weight) end
arrived(arrivals)
