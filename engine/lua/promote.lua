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
-- Every job hash is read before the first write: during a slot migration
-- a hash that has moved fails the script, and it must fail before it has
-- changed anything (the call is then retried whole).
local jobs = {}
for i, jid in ipairs(due) do
  local f = redis.call('HMGET', job_key(jid), 'prio', 'state')
  jobs[i] = f
end
local moved = 0
for i, jid in ipairs(due) do
  local prio, state = jobs[i][1], jobs[i][2]
  -- Only a job still delayed moves: one found waiting, running or
  -- finished is left as it is (a stale entry of the set: moving it would
  -- give a running job a second entry, and two workers).
  if prio and (state == 'delayed' or not state) then
    redis.call('XADD', stream_key(prio), '*', 'i', jid)
    redis.call('HSET', job_key(jid), 'state', 'waiting')
    moved = moved + 1
  end
end
if #due > 0 then
  in_parts(due, function(part) return redis.call('ZREM', delayed, unpack(part)) end)
end
local next_due = -1
local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
if first[2] then next_due = math.max(tonumber(first[2]) - now, 0) end
return { moved, next_due }
