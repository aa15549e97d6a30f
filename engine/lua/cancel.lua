-- cancel.lua: an operator cancels one job.
--
-- KEYS[1]        meta hash; KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua)
-- ARGV[1]        key base
-- ARGV[2]        dead-letter cap
-- ARGV[3]        job id
-- Reply          cancelled  it was waiting or delayed: it is a dead letter
--                           now ("cancelled by an operator"), re-drivable
--                requested  it is running (or delivered to a worker): the
--                           request is recorded in `cr`; its worker tells
--                           the handler, and settle.lua or reclaim.lua
--                           bury it unless its run succeeded
--                completed | dead   finished already: nothing changed
--                missing    no such job
--
-- A waiting job's stream entry stays where it is (deleting an entry the
-- group has not read yet would leave Redis unable to tell the group's
-- lag): `cx` maps the job to its level until a claim reads past the
-- entry and drops it, and stats subtract `cx` from the waiting counts.
--
-- Safe to replay: a second run finds the job dead with this reason and
-- answers `cancelled` again, or finds the request recorded and answers
-- `requested`, or (the job finished meanwhile) answers as for a finished
-- job: `completed`, `dead`, or `missing` when nothing of it is kept.
--
-- A light job that is neither pending nor heavy is waiting only while the
-- group has not read its entry: an entry read and acknowledged finished,
-- even while it lingers in the stream until the next trim.

fixed_keys('stats', 'delayed', 'dead', 'cr', 'cx')
local base, cap, jid = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local jk = job_key(jid)
local now = now_ms()
local f = redis.call('HMGET', jk, 'state', 'prio', 'err')
local state, level = f[1], f[2]
if not state then
  -- A light job cancelled while it waited, its dead letter deleted since
  -- (its entry waits to be skipped): gone.
  if redis.call('HEXISTS', KEY.cx, jid) == 1 then return 'missing' end
  -- A light job: its id names its entry.
  local eid
  level, eid = light_place(jid)
  if not level then return 'missing' end
  if #redis.call('XPENDING', stream_key(level), GROUP, eid, eid, 1) == 1 then
    redis.call('HSET', KEY.cr, jid, int(now))
    return 'requested'
  end
  -- Neither pending nor given a hash, but read by the group already: it
  -- was delivered and acknowledged, so it finished, and nothing of it is
  -- kept (completed with no keep window, or its dead letter deleted): as
  -- for a lookup, there is no such job. Its entry may linger until the
  -- next trim; it is no waiting job.
  if read_by_group(level, eid) then
    return 'missing'
  end
  local light = light_fields(entry_list(level, eid), level, eid, jid)
  if not light then return 'missing' end
  materialize(base, level, eid, light, nil, nil)
  state = 'waiting'
end
if state == 'active' then
  redis.call('HSET', KEY.cr, jid, int(now))
  return 'requested'
end
if state == 'dead' and f[3] == CANCELLED then return 'cancelled' end
if state ~= 'waiting' and state ~= 'delayed' then return state end
if state == 'waiting' then
  cx_mark(jid, level)
else
  redis.call('ZREM', KEY.delayed, jid)
end
-- A success its presumed-dead worker reports later no longer stands
-- (settle.lua's late_success): the operator's cancel came first.
redis.call('HDEL', jk, 'lost')
bury(base, jk, jid, CANCELLED, cap, now)
redis.call('HINCRBY', KEY.stats, 'dead', 1)
return 'cancelled'
