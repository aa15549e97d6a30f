-- claim.lua: take up to COUNT jobs in strict priority order and mark them active.
--
-- KEYS[1]        meta hash (holds the paused flag); KEYS[2 ..] priority streams
-- ARGV[1]        key base
-- ARGV[2]        consumer name of the claiming worker
-- ARGV[3]        COUNT: how many jobs at most
-- ARGV[4]        call token: made by the worker before its first try and
--                sent again on every retry of this call
-- ARGV[5]        how long (ms) this call's reply is kept for a replay
-- ARGV[6]        token of the worker's previous claim, whose reply arrived
--                (its record is deleted), or ''
-- ARGV[7]        D: number of entries already delivered to this consumer by a
--                blocking XREADGROUP, to activate before reading more
-- ARGV[8 ..]     3 fields per delivered entry: level, entry id, job id
-- Reply          {paused (0/1), rate (-1: no rate limit; 0: limited, a token
--                 is free; N > 0: limited, next token in N ms), then 7 fields
--                 per job:
--                 job id, level, entry id, fence, attempt,
--                 "max_attempts,timeout_ms,created_ms", payload}
--
-- Safe to replay. A claim whose reply was lost (a dropped connection, a
-- reply later than the client's timeout) has run; the worker sends it again
-- with the same token, and gets the recorded reply of the first run
-- (`call:<token>`, msgpack) instead of a second claim. Without this, the
-- first run's jobs stay active under the worker's name, unseen by it, until
-- the reclaimer takes them with an attempt spent. The record is deleted by
-- the worker's next claim, or expires.
--
-- An entry is activated only while it is still pending for this consumer
-- and its job is waiting: entries a blocking read delivered may have
-- waited longer than the visibility timeout and been reclaimed meanwhile,
-- and activating them then would raise the fence over the new owner's.
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

local base, consumer = ARGV[1], ARGV[2]
local remaining = tonumber(ARGV[3])
local record_key, record_ms = base .. 'call:' .. ARGV[4], ARGV[5]
if ARGV[6] ~= '' then redis.call('DEL', base .. 'call:' .. ARGV[6]) end
local recorded = redis.call('GET', record_key)
if recorded then
  -- A replay: the first run's jobs, but only those this worker still
  -- holds. One the reclaimer took back meanwhile (the reply came later than
  -- the visibility timeout) belongs to someone else now.
  local first = cmsgpack.unpack(recorded)
  local held = { first[1], first[2] }
  for i = 3, #first, 7 do
    local f = redis.call('HMGET', base .. 'job:' .. first[i], 'fence', 'state', 'wk')
    if tonumber(f[1]) == tonumber(first[i + 3]) and f[2] == 'active' and f[3] == consumer then
      for k = 0, 6 do held[#held + 1] = first[i + k] end
    end
  end
  return held
end
local delivered = tonumber(ARGV[7])
local now = now_ms()
local now_text = int(now)
local out = { 0, -1 }
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

local function activate(level, eid, jid)
  local jk = base .. 'job:' .. jid
  local f = redis.call('HMGET', jk, 'payload', 'att', 'fence', 'run', 'state')
  if not f[1] or (f[5] and f[5] ~= 'waiting') then
    -- The job is gone, or not waiting (this entry is a stale copy): the
    -- entry is acknowledged only, and the next trim drops it.
    redis.call('XACK', stream_key(level), GROUP, eid)
    return
  end
  local run = f[4]
  if not run then
    -- A hash written before `run` existed keeps these three apart.
    local old = redis.call('HMGET', jk, 'max', 'to', 'cat')
    run = (old[1] or '1') .. ',' .. (old[2] or '0') .. ',' .. (old[3] or '0')
  end
  local att, fence = (tonumber(f[2]) or 0) + 1, (tonumber(f[3]) or 0) + 1
  -- `ct`: the claim call that activated it; while that call's record
  -- exists its reply has not been confirmed (see reclaim.lua).
  redis.call('HSET', jk, 'state', 'active', 'att', counter_text(att), 'fence', counter_text(fence), 'sat', now_text, 'wk', consumer, 'ct', ARGV[4])
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = jid, level, eid, fence
  out[n + 5], out[n + 6], out[n + 7] = att, run, f[1]
  remaining = remaining - 1
end

-- Jobs taken from the streams by this call (or delivered to it).
local taken = 0
local paused = meta[1] == '1'
for i = 0, delivered - 1 do
  local o = 8 + i * 3
  if paused then
    -- A blocking read delivered these after the queue was paused: put them
    -- back at the end of their level instead of running them.
    local stream = stream_key(ARGV[o])
    if redis.call('XACK', stream, GROUP, ARGV[o + 1]) == 1
        and redis.call('EXISTS', base .. 'job:' .. ARGV[o + 2]) == 1 then
      redis.call('XADD', stream, '*', 'i', ARGV[o + 2])
    end
  elseif #redis.call('XPENDING', stream_key(ARGV[o]), GROUP, ARGV[o + 1], ARGV[o + 1], 1, consumer) == 1 then
    local before = remaining
    activate(ARGV[o], ARGV[o + 1], ARGV[o + 2])
    taken = taken + before - remaining
  end
  -- Otherwise the entry was reclaimed from this consumer meanwhile: it is
  -- someone else's now.
end

local function spend_tokens()
  if rate > 0 then
    tokens = tokens - taken
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'tts', int(now))
    if tokens >= 1 then
      out[2] = 0
    else
      out[2] = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
    end
  end
end

local function reply()
  redis.call('SET', record_key, cmsgpack.pack(out), 'PX', record_ms)
  return out
end

if paused then
  out[1] = 1
  spend_tokens()
  return reply()
end

if rate > 0 then
  remaining = math.min(remaining, math.floor(tokens - taken))
end

local level = 0
while remaining > 0 and KEYS[2 + level] do
  local r = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', remaining, 'STREAMS', stream_key(level), '>')
  if r then
    for _, e in ipairs(r[1][2]) do
      local before = remaining
      activate(level, e[1], e[2][2])
      taken = taken + before - remaining
    end
  else
    level = level + 1
  end
end
spend_tokens()
return reply()
