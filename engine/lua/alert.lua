-- alert.lua: one alert rule's state, moved by an observation of its
-- condition (docs/alerts.md). Every process evaluates every rule; the
-- first to record a transition gets the notice, the others find the
-- state already moved, so each transition is announced once fleet-wide.
--
-- KEYS[1]  the rule's hash: state ("ok", "pending", "firing"),
--          pending_since, firing_since, clear_since, last_notified (ms),
--          seq (notices made), enqueued (the last notice sent on),
--          announced ("1" when the firing was announced, not silenced),
--          last_kind, last_at, last_fired, value, observed_at, silenced_until,
--          fired_total
-- ARGV[1]  1 when the condition holds now, else 0
-- ARGV[2]  the observed value (text)
-- ARGV[3]  for_ms: how long it must hold before firing
-- ARGV[4]  clear_ms: how long it must not hold before a firing resolves
-- ARGV[5]  repeat_ms: re-announce a firing this often (0: never)
-- ARGV[6]  observe | enqueued | silence
-- ARGV[7]  enqueued: the seq sent on; silence: until ms (0: lift)
-- Reply    {notice, seq, state, firing_since, silenced, enqueued,
--           last_kind, last_at}: notice is firing, repeat, resolved or ''.
--
-- Safe to replay: an observation sent again finds the state it left (the
-- times it checks have not passed again), and gives no second notice.

local H = KEYS[1]
local op = ARGV[6]
local now = now_ms()

local function reply(notice)
  local f = redis.call('HMGET', H, 'seq', 'state', 'firing_since', 'silenced_until', 'enqueued', 'last_kind', 'last_at')
  local silenced = tonumber(f[4] or '0') > now and 1 or 0
  return {notice, tonumber(f[1] or '0'), f[2] or 'ok', tonumber(f[3] or '0'), silenced,
    tonumber(f[5] or '0'), f[6] or '', tonumber(f[7] or '0')}
end

if op == 'enqueued' then
  local seq = tonumber(ARGV[7])
  if seq > tonumber(redis.call('HGET', H, 'enqueued') or '0') then
    redis.call('HSET', H, 'enqueued', int(seq))
  end
  return reply('')
end

if op == 'silence' then
  local untl = tonumber(ARGV[7])
  if untl > now then
    redis.call('HSET', H, 'silenced_until', int(untl))
  else
    redis.call('HDEL', H, 'silenced_until')
  end
  return reply('')
end

local holds = ARGV[1] == '1'
local for_ms, clear_ms, repeat_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local f = redis.call('HMGET', H, 'state', 'pending_since', 'clear_since', 'last_notified', 'silenced_until', 'announced')
local state = f[1] or 'ok'
local pending_since = tonumber(f[2] or '0')
local clear_since = tonumber(f[3] or '0')
local last_notified = tonumber(f[4] or '0')
local silenced = tonumber(f[5] or '0') > now
local announced = f[6] == '1'
redis.call('HSET', H, 'value', ARGV[2], 'observed_at', int(now))

-- A notice: counted, with what it says, unless the rule is silenced.
local function notice(kind)
  if silenced then
    if kind ~= 'resolved' then redis.call('HSET', H, 'announced', '0') end
    return ''
  end
  if kind == 'resolved' and not announced then return '' end
  if kind ~= 'resolved' then redis.call('HSET', H, 'announced', '1', 'last_fired', int(now)) end
  redis.call('HINCRBY', H, 'seq', 1)
  redis.call('HSET', H, 'last_kind', kind, 'last_at', int(now), 'last_notified', int(now))
  return kind
end

if holds then
  if state == 'firing' then
    redis.call('HDEL', H, 'clear_since')
    local quiet = not announced
    if (repeat_ms > 0 and now - last_notified >= repeat_ms) or (quiet and not silenced) then
      return reply(notice(quiet and 'firing' or 'repeat'))
    end
    return reply('')
  end
  if state == 'ok' then
    state = 'pending'
    pending_since = now
    redis.call('HSET', H, 'state', 'pending', 'pending_since', int(now))
  end
  if now - pending_since >= for_ms then
    redis.call('HSET', H, 'state', 'firing', 'firing_since', int(now), 'last_notified', int(now), 'last_fired', int(now))
    redis.call('HDEL', H, 'clear_since', 'pending_since')
    redis.call('HINCRBY', H, 'fired_total', 1)
    return reply(notice('firing'))
  end
  return reply('')
end

-- The condition does not hold.
if state == 'pending' then
  redis.call('HSET', H, 'state', 'ok')
  redis.call('HDEL', H, 'pending_since')
  return reply('')
end
if state == 'firing' then
  -- Damping: a firing resolves only once the condition stayed false for
  -- clear_ms, so a value wavering at the threshold is not announced again
  -- and again.
  if clear_since == 0 then
    clear_since = now
    redis.call('HSET', H, 'clear_since', int(now))
  end
  if now - clear_since >= clear_ms then
    redis.call('HSET', H, 'state', 'ok')
    redis.call('HDEL', H, 'clear_since', 'firing_since')
    local n = notice('resolved')
    redis.call('HSET', H, 'announced', '0')
    return reply(n)
  end
end
return reply('')
