-- promote.lua: move delayed jobs whose time has come to their priority stream.
--
-- KEYS[1]        meta hash; KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua)
-- ARGV[1]        key base
-- ARGV[2]        at most this many jobs per call
-- Reply          {moved, ms until the next delayed job is due (-1: none)}

fixed_keys('delayed')
local base, limit = ARGV[1], tonumber(ARGV[2])
local delayed = KEY.delayed
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', int(now), 'LIMIT', 0, limit)
for _, jid in ipairs(due) do
  local jk = base .. 'job:' .. jid
  local prio = redis.call('HGET', jk, 'prio')
  if prio then
    redis.call('XADD', stream_key(prio), '*', 'i', jid)
    redis.call('HSET', jk, 'state', 'waiting')
  end
end
if #due > 0 then redis.call('ZREM', delayed, unpack(due)) end
local next_due = -1
local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
if first[2] then next_due = math.max(tonumber(first[2]) - now, 0) end
return { #due, next_due }
