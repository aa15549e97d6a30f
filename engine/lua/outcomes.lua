-- outcomes.lua: what a finished attempt does to a heavy job: retry with
-- backoff, snooze, dead-letter, error history, per-minute counts (after
-- common.lua).

-- The outcome to record for a job whose cancel was requested: a success
-- stands; anything else buries the job (keeping the handler's reason).
local function cancelled_outcome(kind, text)
  if kind == 'done' then return kind, text end
  if kind == 'bury' and string.sub(text, 1, #CANCELLED) == CANCELLED then return kind, text end
  if text ~= '' then return 'bury', CANCELLED .. ': ' .. text end
  return 'bury', CANCELLED
end

-- Delay before the next attempt: min(cap, base * factor^(attempt-1)),
-- lowered by up to `jitter` (0..1) of itself at random. jitter = 1 is the
-- "full jitter" of the AWS architecture blog; the default keeps the nominal
-- 2 s, 4 s, 8 s recognisable while still spreading a thundering herd.
-- `policy` is the job's "base_ms,factor,cap_ms,jitter" field.
local function backoff_ms(policy, attempt)
  local base, factor, cap, jitter = string.match(policy or '', '^([^,]+),([^,]+),([^,]+),([^,]+)$')
  base, factor, cap, jitter = tonumber(base) or 2000, tonumber(factor) or 2, tonumber(cap) or 3600000, tonumber(jitter) or 0
  local d = base * (factor ^ math.max(attempt - 1, 0))
  if d > cap then d = cap end
  d = d - d * jitter * math.random()
  return math.floor(d)
end

-- Put a job back in line: ready now, or in `delayed` until now + delay.
local function schedule(base, jk, jid, prio, delay, now)
  if delay <= 0 then
    redis.call('XADD', stream_key(prio), '*', 'i', jid)
    redis.call('HSET', jk, 'state', 'waiting', 'due', int(now))
  else
    redis.call('ZADD', KEY.delayed, int(now + delay), jid)
    redis.call('HSET', jk, 'state', 'delayed', 'due', int(now + delay))
  end
end

-- Move a job to the dead letters, keeping at most `cap` of them: the oldest
-- beyond the cap are deleted with their job hashes, so memory stays bounded.
-- At most CAP_EVICTIONS per call, so a cap lowered far below the letters
-- kept does not hold Redis for one long script: each later burial takes
-- the next chunk.
local CAP_EVICTIONS = 1000
local function bury(base, jk, jid, reason, cap, now)
  redis.call('HSET', jk, 'state', 'dead', 'err', reason, 'fat', int(now))
  redis.call('PERSIST', jk)
  local dead = KEY.dead
  redis.call('ZADD', dead, int(now), jid)
  local excess = math.min(redis.call('ZCARD', dead) - cap, CAP_EVICTIONS)
  if excess > 0 then
    local oldest = redis.call('ZRANGE', dead, 0, excess - 1)
    for _, old in ipairs(oldest) do
      redis.call('DEL', job_key(old))
    end
    redis.call('ZREMRANGEBYRANK', dead, 0, excess - 1)
  end
end

-- Append one failed attempt to the job's error history (last 10 kept).
local function record_error(jk, attempt, err, now)
  local raw = redis.call('HGET', jk, 'hist')
  local hist = {}
  if raw then hist = cjson.decode(raw) end
  table.insert(hist, { attempt = attempt, error = err, at = now })
  while #hist > 10 do table.remove(hist, 1) end
  redis.call('HSET', jk, 'err', err, 'hist', cjson.encode(hist))
end

-- A failed attempt: retry after `delay` (or the job's backoff when delay is
-- negative) while attempts are left, otherwise dead-letter. `bury_now`
-- skips the remaining attempts. Returns 'retry' or 'dead'.
local function fail(base, jk, jid, err, delay, bury_now, cap, now)
  local f = redis.call('HMGET', jk, 'att', 'run', 'bo', 'prio')
  local att = tonumber(f[1]) or 0
  local max = tonumber(string.match(f[2] or '', '^(%d+),')) or 1
  local stats = KEY.stats
  redis.call('HINCRBY', stats, 'failed', 1)
  record_error(jk, att, err, now)
  if (not bury_now) and att < max then
    if delay < 0 then delay = backoff_ms(f[3], att) end
    schedule(base, jk, jid, f[4], delay, now)
    redis.call('HINCRBY', stats, 'retried', 1)
    return 'retry'
  end
  bury(base, jk, jid, err, cap, now)
  redis.call('HINCRBY', stats, 'dead', 1)
  return 'dead'
end

-- Per-minute throughput: completed and failed attempts counted in one hash
-- per hour (`tp:<hours since epoch>`, fields `<minute>c` and `<minute>f`),
-- kept 25 hours, so charts of the last hour or day cost one read per hour.
local function count_minute(base, now, completed, failed)
  if completed + failed == 0 then return end
  local minute = math.floor(now / 60000)
  local hk = base .. 'tp:' .. int(math.floor(minute / 60))
  local m = int(minute % 60)
  if completed > 0 then redis.call('HINCRBY', hk, m .. 'c', completed) end
  if failed > 0 then redis.call('HINCRBY', hk, m .. 'f', failed) end
  redis.call('PEXPIRE', hk, 90000000)
end
