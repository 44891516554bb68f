-- finish: forgets a batch whose results are all written: its list, its claim and its refs'
-- attempts (a ref of a cancelled job, never written, is forgotten here too).
--
-- KEYS[1] batch       list   the refs the task holds
-- KEYS[2] claims      zset   task ids holding refs, by when they last claimed
-- KEYS[3] attempts    hash   ref -> how many deliveries have claimed it
-- ARGV[1] JSON object: batch_id
local batch, claims, attempts = KEYS[1], KEYS[2], KEYS[3]
local args = start()

local refs = redis.call('LRANGE', batch, 0, -1)
if #refs > 0 then redis.call('HDEL', attempts, unpack(refs)) end
redis.call('DEL', batch)
redis.call('ZREM', claims, args.batch_id)
