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
--
-- A light job of this very queue (its id names an entry of this queue's
-- epoch) exists while its entry is in its stream, and has finished when
-- the group has read past its entry and no longer holds it: either way
-- it is left alone (an import into the queue it was exported from would
-- otherwise run it twice). It is brought back only when its stream has
-- lost it (Redis lost the data but the queue's meta survived).

fixed_keys('delayed', 'dead', 'cx')
local base = ARGV[1]
local n = tonumber(ARGV[2])
local now = now_ms()
local o = 3

-- Whether `jid` is a light job this queue still has or has finished.
local function known_light(jid)
  local level, eid = light_place(jid)
  if not level then return false end
  if #redis.call('XRANGE', stream_key(level), eid, eid) > 0 then return true end
  return read_by_group(level, eid)
end

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
  local jk = job_key(jid)
  if redis.call('EXISTS', jk) == 0 and nf > 0 and not known_light(jid) then
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
