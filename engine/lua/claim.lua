-- claim.lua: take up to COUNT jobs in strict priority order and mark them active.
--
-- KEYS[1]        meta hash (holds the paused flag); KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua)
-- ARGV[1]        key base
-- ARGV[2]        consumer name of the claiming worker
-- ARGV[3]        COUNT: how many jobs at most
-- ARGV[4]        call token: made by the worker before its first try and
--                sent again on every retry of this call
-- ARGV[5]        how long (ms) this call's record is kept for a replay
-- ARGV[6]        token of the worker's previous claim, whose reply arrived
--                (its record is deleted), or ''
-- ARGV[7]        D: number of entries delivered to this worker and not yet
--                activated, to activate before reading more: by a blocking
--                XREADGROUP (to the consumer's DELIVERED name), or by a
--                direct read (worker.rs) that found them needing this script
-- ARGV[8]        the consumer name those entries are pending for
-- ARGV[9 ..]     3 fields per delivered entry: level, entry id, job id
--                ('' for a light entry: its id is its place)
-- Reply          {paused (0/1), rate (-1: no rate limit; 0: limited, a token
--                 is free; N > 0: limited, next token in N ms), the queue's
--                 epoch ('' when no light job is taken), H, then 7 fields per
--                 heavy job:
--                 job id, level, entry id, fence, attempt, run, payload;
--                 then 4 per light job: level, entry id, run, payload
--                 (its id is "<epoch>-<level>-<entry id>", its fence 0, its
--                 attempt 1)}
--                A light job has fence 0 (its fence is the pending list) and
--                run "max_attempts,timeout_ms", followed by its backoff when
--                read from its options field (created: the entry id's time);
--                a heavy job's run is "max_attempts,timeout_ms,created_ms".
--
-- Light jobs (common.lua) cost nothing here beyond the XREADGROUP: being
-- pending for this consumer is what makes them active. Heavy jobs get
-- their hash marked active and their fence raised.
--
-- Safe to replay. A claim whose reply was lost (a dropped connection, a
-- reply later than the client's timeout) has run; the worker sends it again
-- with the same token and gets the first run's jobs again (`call:<token>`
-- lists them), those it still holds, instead of a second claim. Without
-- this, the first run's jobs stay active under the worker's name, unseen by
-- it, until the reclaimer takes them with an attempt spent. The record is
-- deleted by the worker's next claim, or expires; the meta field
-- `ct:<consumer>` names it, for reclaim.lua to tell such unconfirmed jobs.
--
-- A delivered entry is activated only while it is still pending for the
-- name it was delivered to (ARGV[8]) and its job is waiting: it may have waited
-- longer than the visibility timeout and been reclaimed meanwhile, and
-- activating it then would raise the fence over the new owner's.
--
-- A paused queue activates nothing, not even entries a blocking read
-- delivered meanwhile (they go back to the end of their stream).
-- Levels are read one at a time with a non-blocking XREADGROUP, so a level
-- is served only when every more urgent level has nothing new. (COUNT in a
-- multi-stream XREADGROUP is per stream, which would not be strict.)
-- Entries whose job hash is gone are acknowledged and dropped (settle.lua
-- trims acknowledged entries).
--
-- Rate limit (meta fields rate = jobs/s, burst): a token bucket kept in the
-- meta hash (tokens, tts = when they were counted), shared by every worker
-- of the fleet because it lives in Redis. A claim takes at most as many jobs
-- as there are whole tokens. Entries already delivered by a blocking read
-- are activated regardless (they are ours already) and spend tokens too, so
-- the bucket may go negative and later claims wait longer.

fixed_keys('cx')
local base, consumer = ARGV[1], ARGV[2]
local remaining = tonumber(ARGV[3])
local token = ARGV[4]
local record_ms = ARGV[5]
forget_call(ARGV[6])
local now = now_ms()
local now_text = int(now)

-- One job's 7 reply fields, appended to `out`.
local function append_job(out, jid, level, eid, fence, att, run, payload)
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = jid, level, eid, fence
  out[n + 5], out[n + 6], out[n + 7] = att, run, payload
end

-- A heavy job, marked active under a raised fence; appended to `out`.
local function activate_heavy(out, level, eid, jid)
  local jk = job_key(jid)
  local f = redis.call('HMGET', jk, 'payload', 'att', 'fence', 'run', 'state')
  if not f[1] or (f[5] and f[5] ~= 'waiting') then
    -- The job is gone, or not waiting (this entry is a stale copy): the
    -- entry is acknowledged only, and the next trim drops it.
    redis.call('XACK', stream_key(level), GROUP, eid)
    return false
  end
  local run = f[4]
  local att, fence = (tonumber(f[2]) or 0) + 1, (tonumber(f[3]) or 0) + 1
  -- `ct`: the claim call that activated it; while that call's record
  -- exists its reply has not been confirmed (see reclaim.lua).
  redis.call('HSET', jk, 'state', 'active', 'att', counter_text(att), 'fence', counter_text(fence),
    'sat', now_text, 'wk', consumer, 'ct', token)
  append_job(out, jid, level, eid, fence, att, run, f[1])
  return true
end

-- A light job's 4 reply fields, appended to `light`.
local function append_light(light, level, eid, run, payload)
  local n = #light
  light[n + 1], light[n + 2], light[n + 3], light[n + 4] = level, eid, run, payload
end

-- A light job (fields `f`, see light_fields); appended to `light`.
local function light_job(light, level, eid, f)
  append_light(light, level, eid, f.o, f.p)
end

-- The reply: `out` (status, then 7-field jobs) with the light jobs after.
local function compose(out, light)
  out[3], out[4] = '', (#out - 4) / 7
  if #light > 0 then
    out[3] = epoch()
    local n = #out
    for i = 1, #light do out[n + i] = light[i] end
  end
  return out
end

local recorded = recorded_reply(token)
if recorded then
  -- A replay: the first run's jobs, but only those this worker still
  -- holds. One the reclaimer took back meanwhile (the reply came later than
  -- the visibility timeout) belongs to someone else now.
  local status, jobs = string.match(recorded, '^(%S+ %S+) ?(.*)$')
  local paused, rate = string.match(status, '^(%S+) (%S+)$')
  local held, held_light = { tonumber(paused), tonumber(rate), '', 0 }, {}
  for level, eid, jid in string.gmatch(jobs, '(%d+) (%S+) (%S+)') do
    local stream = stream_key(level)
    -- '-': a light job, whose id is its place.
    if jid == '-' then jid = light_id(level, eid) end
    if #redis.call('XPENDING', stream, GROUP, eid, eid, 1, consumer) == 1 then
      local jk = job_key(jid)
      local h = redis.call('HMGET', jk, 'payload', 'att', 'fence', 'run', 'state', 'wk', 'ct')
      if h[1] then
        if h[5] == 'active' and h[6] == consumer and h[7] == token then
          append_job(held, jid, tonumber(level), eid, tonumber(h[3]), tonumber(h[2]), h[4], h[1])
        end
      else
        local f = light_fields(entry_list(level, eid), level, eid, jid)
        if f then light_job(held_light, tonumber(level), eid, f) end
      end
    end
  end
  return compose(held, held_light)
end

local delivered = tonumber(ARGV[7])
local out = { 0, -1, '', 0 }
local light = {}
-- The record: "paused rate" then "level entry job" per job taken (job '-'
-- for a light job, whose id is its place).
local taken_record = {}
local meta = redis.call('HMGET', KEYS[1], 'paused', 'rate', 'burst', 'tokens', 'tts')
local rate = tonumber(meta[2] or '0') or 0
local tokens
if rate > 0 then
  local burst = tonumber(meta[3] or '') or math.max(1, rate)
  tokens = tonumber(meta[4] or '') or burst
  local last = tonumber(meta[5] or '') or now
  if now > last then
    tokens = math.min(burst, tokens + (now - last) * rate / 1000)
  end
end

-- Jobs taken from the streams by this call (or delivered to it).
local taken = 0
local function took(level, eid, jid)
  taken = taken + 1
  remaining = remaining - 1
  local n = #taken_record
  taken_record[n + 1], taken_record[n + 2], taken_record[n + 3] = level, eid, jid
end

-- Entries of jobs an operator cancelled while they waited (cancel.lua):
-- acknowledged and dropped when read. One look when there are none.
local cancelled = redis.call('HLEN', KEY.cx) > 0

local paused = meta[1] == '1'
local delivered_to = ARGV[8]
for i = 0, delivered - 1 do
  local o = 9 + i * 3
  local level, eid, jid = tonumber(ARGV[o]), ARGV[o + 1], ARGV[o + 2]
  if jid == '' then jid = light_id(level, eid) end
  local stream = stream_key(level)
  if #redis.call('XPENDING', stream, GROUP, eid, eid, 1, delivered_to) == 1 then
    if cancelled and cx_take(jid) then
      redis.call('XACK', stream, GROUP, eid)
    elseif paused then
      -- A blocking read delivered it after the queue was paused: back to
      -- the end of its level instead of running it.
      redis.call('XACK', stream, GROUP, eid)
      local list = entry_list(level, eid)
      local f = light_fields(list, level, eid, jid)
      if f then
        requeue_light(base, level, eid, f)
      elseif list and redis.call('EXISTS', job_key(jid)) == 1 then
        redis.call('XADD', stream, '*', 'i', jid)
      end
    else
      local e = redis.call('XCLAIM', stream, GROUP, consumer, 0, eid)[1]
      local f = e and light_fields(e[2], level, eid, jid)
      if f then
        light_job(light, level, eid, f)
        took(level, eid, '-')
      elseif e and e[2] and activate_heavy(out, level, eid, e[2][2]) then
        took(level, eid, e[2][2])
      elseif not (e and e[2]) then
        redis.call('XACK', stream, GROUP, eid)
      end
    end
  end
  -- Otherwise the entry was reclaimed meanwhile: it is someone else's now.
end

local function spend_tokens()
  if rate > 0 then
    tokens = tokens - taken
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'tts', now_text)
    if tokens >= 1 then
      out[2] = 0
    else
      out[2] = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
    end
  end
end

local function reply()
  local status = out[1] .. ' ' .. out[2]
  if taken > 0 then
    record_reply(token, status .. ' ' .. table.concat(taken_record, ' '), record_ms)
    redis.call('HSET', KEYS[1], 'ct:' .. consumer, token)
  else
    record_reply(token, status, record_ms)
  end
  return compose(out, light)
end

if paused then
  out[1] = 1
  spend_tokens()
  return reply()
end

if rate > 0 then
  remaining = math.min(remaining, math.floor(tokens - taken))
end

-- A read that answers fewer entries than it asked for has emptied its
-- level (nothing is added while the script runs), so the next level is
-- read without a second, empty read of this one.
local level = 0
while remaining > 0 and KEYS[FIRST_STREAM + level] do
  local asked = remaining
  local r = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', asked, 'STREAMS', stream_key(level), '>')
  if r then
    local entries = r[1][2]
    for _, e in ipairs(entries) do
      local list = e[2]
      local light_entry = list[1] == 'p'
      if cancelled and cx_take(light_entry and light_id(level, e[1]) or list[2]) then
        redis.call('XACK', stream_key(level), GROUP, e[1])
      elseif light_entry then
        -- Light: p, o[, k] in the order enqueue.lua wrote them, read by
        -- position (no table of fields per job on the hot path); the reply's
        -- run is the options field, whose first two numbers it is.
        append_light(light, level, e[1], list[4], list[2])
        took(level, e[1], '-')
      elseif activate_heavy(out, level, e[1], list[2]) then
        took(level, e[1], list[2])
      end
    end
    if #entries < asked then level = level + 1 end
  else
    level = level + 1
  end
end
spend_tokens()
return reply()
