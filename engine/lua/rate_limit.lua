-- rate_limit.lua: set or remove a queue's rate limit.
--
-- KEYS[1]        meta hash
-- ARGV[1]        jobs per second ('' = remove the limit)
-- ARGV[2]        burst
-- Reply          1 when the limit changed, 0 when it was already so
--
-- Every worker of a fleet applies its configured limit at start; the bucket
-- (tokens, tts) is reset only when the limit really changes, so restarts and
-- scale-ups do not each grant a full burst.

local meta = KEYS[1]
local cur = redis.call('HMGET', meta, 'rate', 'burst')
if ARGV[1] == '' then
  if not cur[1] then return 0 end
  redis.call('HDEL', meta, 'rate', 'burst', 'tokens', 'tts')
  return 1
end
if cur[1] and tonumber(cur[1]) == tonumber(ARGV[1]) and tonumber(cur[2]) == tonumber(ARGV[2]) then
  return 0
end
-- A changed limit starts from a full bucket.
redis.call('HDEL', meta, 'tokens', 'tts')
redis.call('HSET', meta, 'rate', ARGV[1], 'burst', ARGV[2])
return 1
