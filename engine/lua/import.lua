-- import.lua: bring jobs back from a backup, each in its state.
--
-- KEYS[1]        meta hash (routing); KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua)
-- ARGV[1]        key base
-- ARGV[2]        number of jobs N
-- ARGV[3 ..]     per job: id, number of hash fields F, then F name/value pairs
-- Reply          the number of jobs added.
--
-- A job whose id exists is left alone, so an import can be repeated. A job
-- that was active when the backup was taken comes back waiting: it runs
-- again (at-least-once), with its attempt count kept.

fixed_keys('delayed', 'dead')
local base = ARGV[1]
local n = tonumber(ARGV[2])
local now = now_ms()
local o = 3
local added = 0
for _ = 1, n do
  local jid = ARGV[o]
  local nf = tonumber(ARGV[o + 1])
  local fields = {}
  local state, prio, due, fat = 'waiting', '0', nil, nil
  for f = 0, nf - 1 do
    local k, v = ARGV[o + 2 + f * 2], ARGV[o + 3 + f * 2]
    if k == 'state' then state = v
    elseif k == 'prio' then prio = v
    elseif k == 'due' then due = v
    elseif k == 'fat' then fat = v
    end
    -- Claim details belong to a worker of the old fleet.
    if k ~= 'wk' and k ~= 'sat' then
      table.insert(fields, k)
      table.insert(fields, v)
    end
  end
  o = o + 2 + nf * 2
  local jk = base .. 'job:' .. jid
  if redis.call('EXISTS', jk) == 0 and nf > 0 then
    if state == 'active' then state = 'waiting' end
    table.insert(fields, 'state')
    table.insert(fields, state)
    redis.call('HSET', jk, unpack(fields))
    if state == 'delayed' then
      redis.call('ZADD', KEY.delayed, tonumber(due) or now, jid)
    elseif state == 'dead' then
      redis.call('ZADD', KEY.dead, tonumber(fat) or now, jid)
    elseif state == 'waiting' then
      redis.call('XADD', stream_key(prio), '*', 'i', jid)
    else
      -- completed jobs are not backed up; anything else is dropped again.
      redis.call('DEL', jk)
      added = added - 1
    end
    added = added + 1
  end
end
return added
