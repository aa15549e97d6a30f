-- settle.lua: record the outcomes of a batch of finished attempts.
--
-- KEYS[1]        meta hash; KEYS[2 ..] priority streams
-- ARGV[1]        key base
-- ARGV[2]        keep window for completed jobs, ms (0 = delete at once)
-- ARGV[3]        dead-letter cap
-- ARGV[4]        random seed for backoff jitter
-- ARGV[5]        call token (the same on every retry of this call)
-- ARGV[6]        how long (ms) this call's reply is kept for a replay
-- ARGV[7]        token of the caller's previous settle whose reply arrived
--                (its record is deleted), or ''
-- ARGV[8]        N: number of outcomes
-- ARGV[9 ..]     7 fields per outcome:
--                  job id, level, entry id, fence, kind, text, delay_ms
--                kind: done (text = result) | fail (text = error; the job's
--                backoff) | retry (text = error; delay_ms given) | bury
--                (text = reason) | snooze (delay_ms; no attempt used)
-- Reply          one status per outcome: done, retry, dead, snoozed,
--                fenced (the fence moved on: another worker owns the job now,
--                nothing was changed) or gone (the job no longer exists).
--
-- Safe to replay. A settle whose reply was lost has run; sent again with
-- the same token, it answers the first run's reply (`call:<token>`)
-- and changes nothing, so a retry is not added twice to its stream, a
-- snooze does not give its attempt back twice, and counters count once.
-- Past the record's life, a state check does the same: an outcome under
-- the current fence for a job that is no longer active was recorded
-- already, and is answered from the job's state.

local base, keep, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local record_key, record_ms = base .. 'call:' .. ARGV[5], ARGV[6]
if ARGV[7] ~= '' then redis.call('DEL', base .. 'call:' .. ARGV[7]) end
local recorded = redis.call('GET', record_key)
if recorded then return cjson.decode(recorded) end
math.randomseed(tonumber(ARGV[4]))
local n = tonumber(ARGV[8])
local now = now_ms()
local now_text = int(now)
local out = {}
local completed, failed = 0, 0
-- Entries to acknowledge, by level: one XACK and one trim per level for the
-- whole batch (per-entry calls cost more than the work).
local finished = {}
local function finish(level, eid)
  local ids = finished[level]
  if not ids then
    ids = {}
    finished[level] = ids
  end
  table.insert(ids, eid)
end
for i = 0, n - 1 do
  local o = 9 + i * 7
  local jid, level, eid, fence, kind, text, delay =
    ARGV[o], ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4], ARGV[o + 5], tonumber(ARGV[o + 6])
  local jk = base .. 'job:' .. jid
  local f = redis.call('HMGET', jk, 'fence', 'state')
  local cur, state = f[1], f[2]
  if not cur then
    finish(level, eid)
    table.insert(out, 'gone')
  elseif cur ~= fence then
    table.insert(out, 'fenced')
  elseif state ~= 'active' then
    -- Recorded already (a replay past the record's life).
    if state == 'completed' then
      table.insert(out, 'done')
    elseif state == 'dead' then
      table.insert(out, 'dead')
    elseif kind == 'snooze' then
      table.insert(out, 'snoozed')
    else
      table.insert(out, 'retry')
    end
  else
    finish(level, eid)
    if kind == 'done' then
      completed = completed + 1
      if keep > 0 then
        redis.call('HSET', jk, 'state', 'completed', 'res', text, 'fat', now_text)
        redis.call('HDEL', jk, 'wk')
        redis.call('PEXPIRE', jk, keep)
      else
        redis.call('DEL', jk)
      end
      table.insert(out, 'done')
    elseif kind == 'snooze' then
      redis.call('HINCRBY', jk, 'att', -1)
      schedule(base, jk, jid, redis.call('HGET', jk, 'prio'), delay, now)
      table.insert(out, 'snoozed')
    else
      if kind == 'fail' then delay = -1 end
      failed = failed + 1
      table.insert(out, fail(base, jk, jid, text, delay, kind == 'bury', cap, now))
    end
  end
end
for level, ids in pairs(finished) do
  local stream = stream_key(level)
  redis.call('XACK', stream, GROUP, unpack(ids))
  trim_acked(stream, ids)
end
if completed > 0 then redis.call('HINCRBY', base .. 'stats', 'completed', completed) end
count_minute(base, now, completed, failed)
redis.call('SET', record_key, cjson.encode(out), 'PX', record_ms)
return out
