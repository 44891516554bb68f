-- discard: removes what a failed submission wrote, in one step: marks the job's id (so that a
-- late EXEC of its write is aborted by WATCH), deletes its hash, items, done list, lease and
-- upload bytes, and takes its count off the stats (its waiting posters leave the queue through
-- drop.lua first).
--
-- KEYS[1] discarded   string the mark, with a TTL
-- KEYS[2] job         hash   the job's hash
-- KEYS[3] items       hash   the job's items
-- KEYS[4] done        list   the job's done list
-- KEYS[5] stats       hash   counters
-- KEYS[6] submitting  string the submission's lease
-- KEYS[7..] blob      string the job's upload bytes, one key each
-- ARGV[1] JSON object: mark_ttl (seconds), submitted_field (the stats field it counted in)
local mark, job, items, done, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local args = start()

redis.call('SET', mark, '1', 'EX', args.mark_ttl)
local existed = redis.call('EXISTS', job)
redis.call('DEL', job, items, done)
for i = 6, #KEYS do redis.call('DEL', KEYS[i]) end
-- Last and protected: the failure being cleaned up may be this very hash (a Lua error would stop
-- the script, and scripts are not rolled back either).
if existed == 1 then redis.pcall('HINCRBY', stats, args.submitted_field, -1) end
