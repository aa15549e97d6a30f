-- breaker.lua: every transition of one circuit breaker (docs/breakers.md).
--
-- KEYS[1]  the breaker's hash: state ("closed", "open", "half_open"),
--          until (ms an open breaker may half-open), cool (its current
--          cool-down, ms), forced ("open"/"closed" while an operator holds
--          it), changed (ms of the last transition), the counters opened,
--          half_opened, closed, successes, failures, and the rolling
--          window: last (newest bucket number) and c<n> / f<n> (calls and
--          failures of bucket n).
-- KEYS[2]  the probes in flight while half-open: token -> ms their lease
--          ends (a probe whose worker died frees its slot at that time).
-- KEYS[3]  recorded calls: token -> ms, so a replayed record counts once.
--          All three keys share the breaker's hash tag.
-- ARGV[1]  acquire | record | force
-- ARGV[2]  the call's token (acquire, record), or what to force: open,
--          closed or none (force)
-- ARGV[3]  record: 1 for a success, 0 for a failure
-- ARGV[4]  record: 1 when the call was a probe
-- ARGV[5..13]  failure percent that opens (with 99 % confidence, below),
--          least calls counted, window ms,
--          first cool-down ms, longest cool-down ms, probes at once, probe
--          lease ms, wait ms given to calls refused while half-open,
--          how long recorded tokens are kept (ms)
-- Reply    {verdict, state, wait_ms, transition}: verdict is allow, probe
--          or deny (acquire), recorded, replayed or ignored (record),
--          forced (force); transition is the state entered by this call,
--          or ''.
--
-- Safe to replay: an acquire sent again finds its own probe token, or a
-- state already moved on (a second run does not transition again); a
-- record sent again finds its token recorded and changes nothing; a force
-- sets the same fields again.

local H, PROBES, SEEN = KEYS[1], KEYS[2], KEYS[3]
local op, token = ARGV[1], ARGV[2]
local success, was_probe = ARGV[3] == '1', ARGV[4] == '1'
local pct, min_calls, window = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local first_cool, max_cool, probes = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local lease, half_wait, keep = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])

local BUCKETS = 10
local width = math.max(1, math.floor(window / BUCKETS))
local now = now_ms()

local f = redis.call('HMGET', H, 'state', 'until', 'cool', 'forced', 'last')
local state = f[1] or 'closed'
local until_ms = tonumber(f[2] or '0')
local cool = tonumber(f[3] or '0')
local forced = f[4] or ''
local last = tonumber(f[5] or '-1')

local function clear_window()
  if last >= 0 then
    for i = last - BUCKETS + 1, last do
      redis.call('HDEL', H, 'c' .. int(i), 'f' .. int(i))
    end
  end
  redis.call('HDEL', H, 'last')
  last = -1
end

-- Enter `to`; an open breaker waits `wait` ms before it may half-open.
local function enter(to, wait)
  state = to
  redis.call('HSET', H, 'state', to, 'changed', int(now))
  if to == 'open' then
    until_ms = now + wait
    cool = wait
    redis.call('HSET', H, 'until', int(until_ms), 'cool', int(wait))
    redis.call('HINCRBY', H, 'opened', 1)
  elseif to == 'closed' then
    redis.call('HDEL', H, 'until', 'cool')
    redis.call('HINCRBY', H, 'closed', 1)
  else
    redis.call('HINCRBY', H, 'half_opened', 1)
  end
  if to ~= 'half_open' then redis.call('DEL', PROBES) end
  clear_window()
end

if op == 'force' then
  if token == 'open' then
    redis.call('HSET', H, 'forced', 'open')
    if state ~= 'open' then enter('open', first_cool) end
  elseif token == 'closed' then
    redis.call('HSET', H, 'forced', 'closed')
    if state ~= 'closed' then enter('closed', 0) end
  else
    redis.call('HDEL', H, 'forced')
    -- Released from a forced open: probe at the next call.
    if forced == 'open' and state == 'open' then
      redis.call('HSET', H, 'until', int(now))
    end
  end
  return {'forced', state, 0, ''}
end

if op == 'acquire' then
  if forced == 'closed' then return {'allow', state, 0, ''} end
  if forced == 'open' then return {'deny', 'open', first_cool, ''} end
  if state == 'closed' then return {'allow', 'closed', 0, ''} end
  local transition = ''
  if state == 'open' then
    if now < until_ms then return {'deny', 'open', until_ms - now, ''} end
    enter('half_open', 0)
    transition = 'half_open'
  end
  redis.call('ZREMRANGEBYSCORE', PROBES, '-inf', now)
  if redis.call('ZSCORE', PROBES, token) then
    return {'probe', 'half_open', 0, transition}
  end
  if redis.call('ZCARD', PROBES) < probes then
    redis.call('ZADD', PROBES, now + lease, token)
    redis.call('PEXPIRE', PROBES, lease)
    return {'probe', 'half_open', 0, transition}
  end
  return {'deny', 'half_open', half_wait, transition}
end

-- record
if redis.call('ZADD', SEEN, 'NX', now, token) == 0 then
  return {'replayed', state, 0, ''}
end
redis.call('ZREMRANGEBYSCORE', SEEN, '-inf', now - keep)
redis.call('PEXPIRE', SEEN, keep)
redis.call('HINCRBY', H, success and 'successes' or 'failures', 1)
if forced ~= '' then return {'recorded', state, 0, ''} end

if state == 'half_open' then
  -- Only a probe's answer moves a half-open breaker; a call let through
  -- before it opened says nothing about the target now.
  if not was_probe or redis.call('ZREM', PROBES, token) == 0 then
    return {'ignored', state, 0, ''}
  end
  if success then
    enter('closed', 0)
    return {'recorded', 'closed', 0, 'closed'}
  end
  local wait = math.min(math.max(cool, first_cool) * 2, max_cool)
  enter('open', wait)
  return {'recorded', 'open', wait, 'open'}
end
if state == 'open' then return {'ignored', state, until_ms - now, ''} end

-- Closed: count the call in the rolling window of BUCKETS buckets.
local n = math.floor(now / width)
if n < last then n = last end
if n > last then
  if last >= 0 then
    for i = last - BUCKETS + 1, math.min(last, n - BUCKETS) do
      redis.call('HDEL', H, 'c' .. int(i), 'f' .. int(i))
    end
  end
  redis.call('HSET', H, 'last', int(n))
  last = n
end
redis.call('HINCRBY', H, 'c' .. int(n), 1)
if not success then redis.call('HINCRBY', H, 'f' .. int(n), 1) end
local fields = {}
for i = n - BUCKETS + 1, n do
  fields[#fields + 1] = 'c' .. int(i)
  fields[#fields + 1] = 'f' .. int(i)
end
local counts = redis.call('HMGET', H, unpack(fields))
local calls, failures = 0, 0
for i = 1, #counts, 2 do
  calls = calls + tonumber(counts[i] or '0')
  failures = failures + tonumber(counts[i + 1] or '0')
end
-- Opens once the failure rate is at or above the threshold with 99 %
-- confidence: the lower bound of its Wilson score interval. A dead target
-- opens it at min_calls (n failures of n give n / (n + z^2)); a scatter of
-- failures below the threshold does not open it by chance, as a plain
-- ratio over few calls would one time in five at 30 % against 50 %.
local function wilson_lower(f, n)
  local z = 2.576
  local p = f / n
  local z2 = z * z
  return (p + z2 / (2 * n) - z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))) / (1 + z2 / n)
end
local tripped
if pct >= 100 then
  tripped = failures == calls
else
  tripped = wilson_lower(failures, calls) * 100 >= pct
end
if failures > 0 and calls >= min_calls and tripped then
  enter('open', first_cool)
  return {'recorded', 'open', first_cool, 'open'}
end
return {'recorded', 'closed', 0, ''}
