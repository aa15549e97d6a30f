-- redrive.lua: send dead letters back to their priority stream with a fresh
-- set of attempts.
--
-- KEYS[1]        meta hash; KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua)
-- ARGV[1]        key base
-- ARGV[2 ..]     job ids; with none, the oldest dead letters, ARGV-less
--                calls take at most 1000 (the caller loops until 0)
-- Reply          number of jobs re-driven

fixed_keys('stats', 'delayed', 'dead')
local base = ARGV[1]
local dead = KEY.dead
local ids = {}
for i = 2, #ARGV do table.insert(ids, ARGV[i]) end
if #ids == 0 then ids = redis.call('ZRANGE', dead, 0, 999) end
local now = now_ms()
local moved = 0
for _, jid in ipairs(ids) do
  if redis.call('ZREM', dead, jid) == 1 then
    local jk = job_key(jid)
    local prio = redis.call('HGET', jk, 'prio')
    if prio then
      redis.call('HSET', jk, 'att', 0)
      -- A success its presumed-dead worker reports later no longer stands
      -- (settle.lua's late_success): the operator asked for another run.
      redis.call('HDEL', jk, 'fat', 'lost')
      schedule(base, jk, jid, prio, 0, now)
      moved = moved + 1
    end
  end
end
return moved
