-- forgive: takes back the attempt a delivery counted for each ref its batch holds, and stamps
-- its claim fresh: the delivery failed for no fault of its posters' (the database was down), and
-- its task lives and tries again, so neither the attempts limit nor the sweep should take them.
--
-- KEYS[1] batch       list   the refs the task holds
-- KEYS[2] claims      zset   task ids holding refs, by when they last claimed
-- KEYS[3] attempts    hash   ref -> how many deliveries have claimed it
-- ARGV[1] JSON object: batch_id
local batch, claims, attempts = KEYS[1], KEYS[2], KEYS[3]
local args = start()

for _, ref in ipairs(redis.call('LRANGE', batch, 0, -1)) do
  if redis.call('HINCRBY', attempts, ref, -1) <= 0 then redis.call('HDEL', attempts, ref) end
end
local time = redis.call('TIME')
redis.call('ZADD', claims, 'XX', string.format('%d.%06d', time[1], time[2]), args.batch_id)
