-- settle.lua: record the outcomes of a batch of finished attempts.
--
-- KEYS[1]        meta hash; KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua)
-- ARGV[1]        key base
-- ARGV[2]        keep window for completed jobs, ms (0 = delete at once)
-- ARGV[3]        dead-letter cap
-- ARGV[4]        random seed for backoff jitter
-- ARGV[5]        call token (the same on every retry of this call)
-- ARGV[6]        how long (ms) this call's reply is kept for a replay
-- ARGV[7]        token of the caller's previous settle whose reply arrived
--                (its record is deleted), or ''
-- ARGV[8]        consumer name of the worker that ran these attempts
-- ARGV[9]        N: number of outcomes
-- ARGV[10 ..]    7 fields per outcome:
--                  job id, level, entry id, fence, kind, text, delay_ms
--                kind: done (text = result) | fail (text = error; the job's
--                backoff) | retry (text = error; delay_ms given) | bury
--                (text = reason) | snooze (delay_ms; no attempt used)
--                fence 0: a light job (common.lua)
-- then           M, and 2 fields per level the outcomes touch: level and
--                the newest of their entry ids (it bounds the trim, found
--                without comparing ids in Lua)
-- then           Q, and Q groups of light jobs completed with nothing to
--                keep (the common outcome): level, count C, C entry ids.
--                Their statuses follow the N outcomes' in the reply.
-- A job an operator asked to cancel while it ran (`cr`, see cancel.lua)
-- is buried unless its outcome is a success.
-- Reply          one text, a status per outcome joined by spaces (one value
--                for the client to parse, not one per job; it is also the
--                call's record): done, retry, dead, snoozed, fenced (the
--                fence moved on: another worker owns the job now, nothing
--                was changed) or gone (the job no longer exists).
--
-- A light job's outcome is accepted while its entry is pending for this
-- worker: a reclaimer that took it acknowledged the entry and gave the job
-- a hash with a raised fence. A heavy job's, while its fence and worker
-- (`wk`) are this outcome's. A completed light job (a Q group's) costs one
-- XACK, without the look at whose entry it is: the job ran. (One XACK for a whole group answers
-- only how many were still pending, and a stale worker's outcome for a job
-- another worker has since completed must be told apart from its own.)
-- Any other outcome gives it a hash first (materialize), then takes the
-- heavy path.
--
-- Safe to replay. A settle whose reply was lost has run; sent again with
-- the same token, it answers the first run's reply (`call:<token>`)
-- and changes nothing, so a retry is not added twice to its stream, a
-- snooze does not give its attempt back twice, and counters count once.
-- Past the record's life, a state check does the same: an outcome under
-- the current fence for a job that is no longer active was recorded
-- already, and is answered from the job's state; a light job no longer
-- pending and without a hash completed.

fixed_keys('stats', 'delayed', 'dead', 'cr', 'cx')
local base, keep, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local token, record_ms = ARGV[5], ARGV[6]
forget_call(ARGV[7])
local recorded = recorded_reply(token)
if recorded then return recorded end
math.randomseed(tonumber(ARGV[4]))
local consumer = ARGV[8]
local n = tonumber(ARGV[9])
local now = now_ms()
local now_text = int(now)
local out = {}
local completed, failed = 0, 0

-- Per level: the entries this call finished, to trim (one trim per level),
-- those of them still to acknowledge (one XACK per level: per-entry calls
-- cost more than the work; a light job's entry was acknowledged when it
-- was checked), and the newest entry id.
local trimmed, to_ack, newest = {}, {}, {}
local r = 10 + n * 7
for _ = 1, tonumber(ARGV[r]) do
  newest[ARGV[r + 1]] = ARGV[r + 2]
  r = r + 2
end
local function append(lists, level, eid)
  local ids = lists[level]
  if not ids then
    ids = {}
    lists[level] = ids
  end
  ids[#ids + 1] = eid
end
local function finish(level, eid, acked)
  append(trimmed, level, eid)
  if not acked then append(to_ack, level, eid) end
end

-- A success reported by the worker a reclaim took job `jid` from (silent
-- past the visibility timeout, presumed dead) under `fence`, while nobody
-- has run the job since: its `lost` field (reclaim.lua) names this worker
-- and fence and the job's current fence, and the job waits, is delayed or
-- dead. The job ran, so it is recorded completed, and what the reclaim
-- counted is taken back. Returns 'done', or nil when it is refused.
local function late_success(jid, jk, fence, text)
  local f = redis.call('HMGET', jk, 'lost', 'state', 'prio', 'fence')
  local lost, state = f[1], f[2]
  if not lost then return nil end
  local who, owned, taken, how = string.match(lost, '^(.*) (%d+) (%d+) ([rdg])$')
  if who ~= consumer or owned ~= fence or taken ~= f[4] then return nil end
  if state == 'dead' then
    redis.call('ZREM', KEY.dead, jid)
  elseif state == 'delayed' then
    redis.call('ZREM', KEY.delayed, jid)
  elseif state == 'waiting' then
    -- Its entry stays until a claim reads past it (cancel.lua's `cx`).
    cx_mark(jid, f[3])
  else
    return nil
  end
  if how == 'd' then
    redis.call('HINCRBY', KEY.stats, 'dead', -1)
  elseif how == 'r' then
    redis.call('HINCRBY', KEY.stats, 'retried', -1)
  end
  if how ~= 'g' then redis.call('HINCRBY', KEY.stats, 'failed', -1) end
  completed = completed + 1
  if keep > 0 then
    redis.call('HSET', jk, 'state', 'completed', 'res', text, 'fat', now_text)
    redis.call('HDEL', jk, 'wk', 'lost')
    redis.call('PEXPIRE', jk, keep)
  else
    redis.call('DEL', jk)
  end
  return 'done'
end
-- Cancel requests (cancel.lua) are few; one look when there are none.
local requests = redis.call('HLEN', KEY.cr) > 0
-- The outcome to record for job `jid` whose outcome was accepted: an
-- operator's cancel request is taken by it (never by a refused outcome: the
-- owner's must still see the request).
local function take_cancel(jid, kind, text)
  if requests and redis.call('HDEL', KEY.cr, jid) == 1 then
    return cancelled_outcome(kind, text)
  end
  return kind, text
end

for i = 0, n - 1 do
  local o = 10 + i * 7
  local jid, level, eid, fence, kind, text, delay =
    ARGV[o], ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4], ARGV[o + 5], tonumber(ARGV[o + 6])
  local jk = job_key(jid)
  local status = nil
  -- A light job made heavy below: its entry is acknowledged already.
  local acked = false
  if fence == '0' then
    -- XACK answers whether the entry was still pending. Pending for
    -- another worker, it is that worker's: after a failover to a replica
    -- that missed this worker's claim, another claimed it again (issue 39,
    -- defect 3). Only a success is let through without the look (the Q
    -- groups below): the job ran.
    local p = redis.call('XPENDING', stream_key(level), GROUP, eid, eid, 1)[1]
    if p and p[2] ~= consumer then
      status = 'fenced'
    elseif redis.call('XACK', stream_key(level), GROUP, eid) == 0 then
      -- Taken by a reclaimer (it has a hash now, under a fence > 0), or
      -- completed already.
      local h = redis.call('HMGET', jk, 'fence', 'st')
      if not h[1] then
        status = 'gone'
      elseif h[2] == token then
        -- This very call's first run gave it its hash (materialize,
        -- below; `st` is its token) and recorded the outcome; this is
        -- that call again, after its record expired (its reply was held
        -- longer than the record lives: an outage). The heavy path
        -- answers what was recorded.
        fence = '1'
        acked = true
      else
        status = kind == 'done' and late_success(jid, jk, '0', text) or 'fenced'
      end
    else
      kind, text = take_cancel(jid, kind, text)
      if kind == 'done' and keep <= 0 then
        finish(level, eid, true)
        completed = completed + 1
        status = 'done'
      else
        local f = light_fields(entry_list(level, eid), level, eid, jid)
        if not f then
          finish(level, eid, true)
          status = 'gone'
        else
          materialize(base, level, eid, f, consumer, nil)
          redis.call('HSET', jk, 'st', token)
          fence = '1'
          acked = true
        end
      end
    end
  end
  if not status then
    local f = redis.call('HMGET', jk, 'fence', 'state', 'wk')
    local cur, state = f[1], f[2]
    if not cur then
      finish(level, eid, acked)
      status = 'gone'
    elseif state == 'active' and f[3] and f[3] ~= consumer then
      -- Another worker's claim at the same fence: a failover lost this
      -- worker's claim, and the next claim raised the fence to the same
      -- value again.
      status = 'fenced'
    elseif cur ~= fence then
      status = kind == 'done' and late_success(jid, jk, fence, text) or 'fenced'
    elseif state ~= 'active' then
      -- Recorded already (a replay past the record's life).
      if state == 'completed' then
        status = 'done'
      elseif state == 'dead' then
        status = 'dead'
      elseif kind == 'snooze' then
        status = 'snoozed'
      else
        status = 'retry'
      end
    else
      kind, text = take_cancel(jid, kind, text)
      finish(level, eid, acked)
      if kind == 'done' then
        completed = completed + 1
        if keep > 0 then
          redis.call('HSET', jk, 'state', 'completed', 'res', text, 'fat', now_text)
          redis.call('HDEL', jk, 'wk')
          redis.call('PEXPIRE', jk, keep)
        else
          redis.call('DEL', jk)
        end
        status = 'done'
      elseif kind == 'snooze' then
        redis.call('HINCRBY', jk, 'att', -1)
        schedule(base, jk, jid, redis.call('HGET', jk, 'prio'), delay, now)
        status = 'snoozed'
      else
        if kind == 'fail' then delay = -1 end
        failed = failed + 1
        status = fail(base, jk, jid, text, delay, kind == 'bury', cap, now)
      end
    end
  end
  out[#out + 1] = status
end
-- Light jobs completed with nothing to keep, a group per level: the same
-- check as above (XACK answers whether the entry was still this worker's),
-- with one argument per job instead of seven.
local g = r + 1
for _ = 1, tonumber(ARGV[g] or '0') do
  local level, c = ARGV[g + 1], tonumber(ARGV[g + 2])
  local stream = stream_key(level)
  for k = g + 3, g + 2 + c do
    local eid = ARGV[k]
    if redis.call('XACK', stream, GROUP, eid) == 1 then
      -- A cancel requested while it ran: a success stands, and the request
      -- is done with (a refused outcome leaves it to the owner's).
      if requests then redis.call('HDEL', KEY.cr, light_id(level, eid)) end
      finish(level, eid, true)
      completed = completed + 1
      out[#out + 1] = 'done'
    elseif redis.call('EXISTS', job_key(light_id(level, eid))) == 1 then
      local jid = light_id(level, eid)
      out[#out + 1] = late_success(jid, job_key(jid), '0', '') or 'fenced'
    else
      out[#out + 1] = 'gone'
    end
  end
  g = g + 2 + c
end
for level, ids in pairs(to_ack) do
  local stream = stream_key(level)
  in_parts(ids, function(part) return redis.call('XACK', stream, GROUP, unpack(part)) end)
end
for level, ids in pairs(trimmed) do
  trim_acked(stream_key(level), ids, newest[level])
end
if completed > 0 then redis.call('HINCRBY', KEY.stats, 'completed', completed) end
count_minute(base, now, completed, failed)
local reply = table.concat(out, ' ')
record_reply(token, reply, record_ms)
return reply
