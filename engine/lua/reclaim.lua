-- reclaim.lua: take over jobs whose worker died, and send each through the
-- failure path (retry with backoff, or dead-letter when no attempts are left)
-- so attempt accounting lives in one place.
--
-- KEYS[1]        meta hash; KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua)
-- ARGV[1]        key base
-- ARGV[2]        consumer name of the reclaiming worker
-- ARGV[3]        visibility timeout ms: entries idle longer are reclaimed
-- ARGV[4]        at most this many entries per stream and call (the PEL is
--                scanned from its start in pages of this size, at most ten)
-- ARGV[5]        dead-letter cap
-- ARGV[6]        random seed for backoff jitter
-- ARGV[7]        the longest silence (ms) between reclaims of this fleet
--                that is no outage (a worker's reclaimer; see
--                partition.rs), or '' (a caller that reclaims when asked:
--                it neither applies the rule nor counts as a reclaim)
-- Reply          {retried, dead, dropped (entries whose job was gone),
--                 requeued (delivered, never activated: back in line),
--                 1 when this call found an outage (see below), else 0}
--
-- Each reclaimed job's fence is raised first, so the presumed-dead worker's
-- late complete/retry is refused (see settle.lua). A worker that is alive
-- refreshes its entries' idle time well inside the visibility timeout.
--
-- Idle times in the pending list are absolute: while Redis is unreachable
-- (an outage, a freeze, a failover, a restart loading its AOF), every
-- entry ages, although no worker died. So silence is only held against an
-- owner while Redis has been reachable: every reclaim records its time in
-- the meta hash (`rc_at`); a reclaim that finds the last one older than
-- ARGV[7] (nobody in the fleet reached Redis meanwhile) records the time
-- Redis came back (`up_at`), and an entry is reclaimed only when it has
-- been idle longer than its timeout counted from then as well. Live
-- workers' keep-alives land meanwhile; dead ones' entries are taken one
-- visibility timeout later than they would have been.

fixed_keys('stats', 'delayed', 'dead', 'cr', 'cx')
local base, consumer, min_idle, count, cap = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
math.randomseed(tonumber(ARGV[6]))
local now = now_ms()
local quiet_bound = tonumber(ARGV[7])
local times = redis.call('HMGET', KEYS[1], 'rc_at', 'up_at', 'rc_qb')
local up_at = tonumber(times[2]) or 0
local outage = 0
if quiet_bound then
  -- The bound is the shortest of this reclaimer's and the last one's: in a
  -- fleet of several settings, the reclaimer that comes first after an
  -- outage must not hide it from one that would have seen it.
  local bound = math.min(quiet_bound, tonumber(times[3]) or quiet_bound)
  if now - (tonumber(times[1]) or 0) > bound then
    -- Nobody reclaimed for longer than the fleet's reclaimers allow (or
    -- never did): Redis was out of reach, or stopped, until now.
    up_at = now
    outage = 1
    redis.call('HSET', KEYS[1], 'up_at', int(up_at))
  end
  redis.call('HSET', KEYS[1], 'rc_at', int(now), 'rc_qb', int(quiet_bound))
end
-- How long Redis has been reachable, which bounds how long an owner can
-- have been silent while it could have been heard.
local reachable_for = now - up_at
local retried, dead, dropped, requeued = 0, 0, 0, 0
-- Each worker announces its own visibility timeout in the meta hash
-- (`vt:<consumer>`), and an entry is reclaimed only when it has been idle
-- longer than its owner's timeout as well as the reclaimer's: a worker
-- configured shorter (in a rolling change of the setting) must not take
-- the live jobs of one configured longer.
local owner_timeouts = {}
local function owner_timeout(owner)
  local t = owner_timeouts[owner]
  if not t then
    local worker = string.gsub(owner, DELIVERED .. '$', '')
    t = tonumber(redis.call('HGET', KEYS[1], 'vt:' .. worker) or '') or 0
    owner_timeouts[owner] = t
  end
  return t
end
local own = tonumber(min_idle)
-- Cancel requests and cancelled entries (cancel.lua) are few; one look
-- each when there are none.
local requests = redis.call('HLEN', KEY.cr) > 0
local cancelled = redis.call('HLEN', KEY.cx) > 0

local MAX_GIVE_BACKS = 3
-- Whether the claim that activated this job was never answered to its
-- worker: its call record (`call:<ct>`) still exists.
local function unconfirmed(jk)
  local f = redis.call('HMGET', jk, 'ct', 'gb')
  return f[1] and (tonumber(f[2]) or 0) < MAX_GIVE_BACKS
    and redis.call('EXISTS', call_key(f[1])) == 1
end

-- The claim token of `owner`'s last claim when its record still exists
-- (the worker never confirmed its reply) and that claim took entry `eid`,
-- idle `idle` ms. A claim.lua record lists its entries. A direct read
-- (store/direct.rs) cannot: its record is "read <ms it is kept>", written
-- in the same MULTI as the read, so the read ran `kept - PTTL` ms ago, and
-- its entries are those delivered to `owner` since then (a keep-alive
-- refresh also counts as a delivery, so an entry the worker knew may be
-- taken for one it never heard of: that is what MAX_GIVE_BACKS bounds).
local function unconfirmed_claim(owner, eid, idle)
  local ct = redis.call('HGET', KEYS[1], 'ct:' .. owner)
  if not ct then return nil end
  local record_key = call_key(ct)
  local record = redis.call('GET', record_key)
  if not record then return nil end
  local kept = string.match(record, '^read (%d+)$')
  if kept then
    local age = tonumber(kept) - redis.call('PTTL', record_key)
    if idle <= age + 1 then return ct end
    return nil
  end
  if string.find(record .. ' ', ' ' .. eid .. ' ', 1, true) then return ct end
  return nil
end

-- Raise job `jk`'s fence over its owner's, so the owner's outcomes are
-- refused from now on. Returns "<the owner's fence> <the new fence>" (a
-- light job's owner holds fence 0) for the job's `lost` field: "<owner>
-- <fences> <r|d|g>" (retried, dead, or its attempt given back), by which
-- settle.lua records a success the owner reports later, while nobody has
-- run the job since, instead of refusing it: the job ran.
local function take_from(jk, was_light)
  local new = redis.call('HINCRBY', jk, 'fence', 1)
  redis.call('HDEL', jk, 'wk')
  if was_light then return '0 ' .. int(new) end
  return int(new - 1) .. ' ' .. int(new)
end

local level = 0
while KEYS[FIRST_STREAM + level] do
  local stream = stream_key(level)
  local start, claimed, seen, acked = '-', 0, 0, {}
  repeat
    -- The pending list from its start, in pages, so entries kept alive
    -- cannot hide idle ones behind them.
    local page = redis.call('XPENDING', stream, GROUP, 'IDLE', min_idle, start, '+', count)
    for _, p in ipairs(page) do
      local eid, owner, idle = p[1], p[2], tonumber(p[3])
      start = '(' .. eid
      local limit = math.max(own, owner_timeout(owner))
      if idle > limit and reachable_for > limit and claimed < count then
        claimed = claimed + 1
        local r = redis.call('XCLAIM', stream, GROUP, consumer, limit, eid)
        local e = r[1]
        if e == nil or e == false or not e[2] then
          -- Deleted from the stream meanwhile.
          redis.call('XACK', stream, GROUP, eid)
          dropped = dropped + 1
        else
          redis.call('XACK', stream, GROUP, eid)
          table.insert(acked, eid)
          local jid = entry_job(e[2], level, eid)
          local jk = job_key(jid)
          local light = light_fields(e[2], level, eid, jid)
          if cancelled and cx_take(jid) then
            -- Delivered by a blocking read after an operator cancelled it
            -- (it is a dead letter already): dropped.
            dropped = dropped + 1
            light = 'handled'
          elseif requests and redis.call('HDEL', KEY.cr, jid) == 1 then
            -- An operator asked to cancel it: it is not run again.
            if light then materialize(base, level, eid, light, owner, nil) end
            if redis.call('EXISTS', jk) == 1 then
              redis.call('HINCRBY', jk, 'fence', 1)
              redis.call('HDEL', jk, 'wk')
              bury(base, jk, jid, CANCELLED, cap, now)
              redis.call('HINCRBY', KEY.stats, 'dead', 1)
              dead = dead + 1
            else
              dropped = dropped + 1
            end
            light = 'handled'
          elseif light and string.sub(owner, -#DELIVERED) == DELIVERED then
            -- Delivered by a blocking read and never activated: it never
            -- ran, so it goes back in line (heavy, under the same id).
            requeue_light(base, level, eid, light)
            light = 'handled'
            requeued = requeued + 1
          elseif light then
            -- A light job its worker ran (or never heard of, when the
            -- claim's reply was lost): from here it is a heavy one.
            materialize(base, level, eid, light, owner, unconfirmed_claim(owner, eid, idle))
          end
          local state = light ~= 'handled' and redis.call('HMGET', jk, 'prio', 'state')
          if light == 'handled' then
            -- Requeued or cancelled above.
          elseif state and state[1] and state[2] ~= 'active' then
            -- Delivered by a blocking read and never activated (the worker
            -- waited too long for a slot, or never heard the reply): it
            -- never ran, so it goes back in line with no attempt spent.
            if not state[2] or state[2] == 'waiting' then
              redis.call('XADD', stream, '*', 'i', jid)
            end
            requeued = requeued + 1
          elseif state and state[1] and unconfirmed(jk) then
            -- Its claim's reply never reached the worker (the record of
            -- that call is still there): it never ran, so it goes back in
            -- line with its attempt given back, at most MAX_GIVE_BACKS
            -- times per job (a job that kills its worker before the next
            -- claim confirms must still run out of attempts).
            local fences = take_from(jk, light)
            redis.call('HINCRBY', jk, 'att', -1)
            redis.call('HINCRBY', jk, 'gb', 1)
            schedule(base, jk, jid, state[1], 0, now)
            redis.call('HSET', jk, 'lost', owner .. ' ' .. fences .. ' g')
            requeued = requeued + 1
          elseif state and state[1] then
            local fences = take_from(jk, light)
            local err = 'worker lost: no progress for ' .. int(limit) .. ' ms (visibility timeout)'
            local how = 'd'
            if fail(base, jk, jid, err, -1, false, cap, now) == 'retry' then
              retried = retried + 1
              how = 'r'
            else
              dead = dead + 1
            end
            -- Unless the dead-letter cap just deleted it.
            if redis.call('EXISTS', jk) == 1 then
              redis.call('HSET', jk, 'lost', owner .. ' ' .. fences .. ' ' .. how)
            end
          else
            dropped = dropped + 1
          end
        end
      end
    end
    seen = seen + #page
  until #page < count or claimed >= count or seen >= 10 * count
  if #acked > 0 then trim_acked(stream, acked) end
  level = level + 1
end
count_minute(base, now, 0, retried + dead)
return { retried, dead, dropped, requeued, outage }
