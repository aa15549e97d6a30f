-- common.lua: helpers prepended to every transition script (see scripts.rs).
--
-- Conventions shared by all scripts:
--   KEYS[1]      the queue's meta hash; it routes the call to the queue's
--                Redis Cluster slot. Scripts that touch priority streams get
--                them as KEYS[2 .. 1 + levels], most urgent first.
--   ARGV[1]      the queue's key base, e.g. "sluice:{emails}:". Job hashes and
--                the other keys of the queue are derived from it and share
--                the "{emails}" hash tag, so they live in the same slot.
-- Times are Redis server milliseconds (TIME), so every machine of a fleet
-- agrees on due times whatever its own clock says.

local GROUP = 'workers'

-- Two layouts of a job (docs/design.md, "Storage"):
--   light  a job enqueued ready to run lives in its stream entry alone:
--          fields p (payload), o (its options: "max_attempts,timeout_ms,"
--          then its backoff "base_ms,factor,cap_ms,jitter") and, with an
--          idempotency key, k. Its id is made of the entry's
--          place, "<epoch>-<level>-<entry id>" (light_id), so finding it
--          needs no index. Its attempt is 1 and its fence is the consumer
--          group's pending list: it is active while its entry is pending
--          for its worker.
--   heavy  a job with mutable state (delayed, retried, snoozed, reclaimed,
--          dead, or kept after completion) has a hash `job:<id>`, and its
--          stream entry holds only i (the id). Jobs written before light
--          jobs existed are heavy, so both are read everywhere.
--   Light entries of the version before had i (the id) first and kept
--   r ("max_attempts,timeout_ms") and b (backoff) apart, and the hash `ix`
--   mapped the id to "<level> <entry id>"; they are still read
--   (light_fields sets f.ix) and leave `ix` when they finish.
-- A light job becomes heavy (materialize) the first time it needs state.

-- The queue's epoch: 16 hex digits that ensure.lua records once in the
-- meta hash (`ep`). It makes light ids unique across queues, partitions
-- and a Redis that lost its data (entry ids alone repeat between streams).
-- A meta hash lost while the queue was open gets one from the clock.
local epoch_text = nil
local function epoch()
  if not epoch_text then
    epoch_text = redis.call('HGET', KEYS[1], 'ep')
    if not epoch_text then
      local t = redis.call('TIME')
      epoch_text = string.format('%08x%08x', tonumber(t[1]), tonumber(t[2]))
      redis.call('HSET', KEYS[1], 'ep', epoch_text)
    end
  end
  return epoch_text
end

-- The id of the light job in entry `eid` on `level`.
local function light_id(level, eid)
  return epoch() .. '-' .. level .. '-' .. eid
end

-- The level and entry id a light job's id names; nil for any other id
-- (another queue's epoch, a heavy job's id).
local function light_place(jid)
  local ep, level, eid = string.match(jid, '^(%x+)%-(%d)%-(%d+%-%d+)$')
  if ep and ep == redis.call('HGET', KEYS[1], 'ep') and KEYS[2 + tonumber(level)] then
    return level, eid
  end
  return nil
end

-- Entries a blocking read delivered are held by the worker's consumer name
-- with this suffix until a claim activates them (XCLAIM to the name itself),
-- so a reclaimer can tell them from jobs that ran. Consumer names cannot
-- contain '~'.
local DELIVERED = '~b'

-- An operator's cancel (cancel.lua): the dead-letter reason it gives, and
-- the two hashes it keeps. `cr`: job id -> ms, requests to stop a running
-- job, read by its worker and honoured by settle.lua and reclaim.lua.
-- `cx`: job id -> level, cancelled jobs whose stream entry the group has
-- not read yet; the claim that reads the entry skips it and drops the id.
local CANCELLED = 'cancelled by an operator'

-- The outcome to record for a job whose cancel was requested: a success
-- stands; anything else buries the job (keeping the handler's reason).
local function cancelled_outcome(kind, text)
  if kind == 'done' then return kind, text end
  if kind == 'bury' and string.sub(text, 1, #CANCELLED) == CANCELLED then return kind, text end
  if text ~= '' then return 'bury', CANCELLED .. ': ' .. text end
  return 'bury', CANCELLED
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int(n)
  return string.format('%d', n)
end

-- Small counters (attempts, fences) as text, formatted once per call: a
-- Lua number handed to redis.call is formatted with a float printf, which
-- costs more than the command itself.
local counter_texts = {}
local function counter_text(n)
  local t = counter_texts[n]
  if not t then
    t = int(n)
    counter_texts[n] = t
  end
  return t
end

-- Stream of priority level `level` (0 = most urgent).
local function stream_key(level)
  return KEYS[2 + tonumber(level)]
end

-- A light entry's fields as a table (i, p, r, b, k, whichever layout; ix
-- when the version before indexed it), from XREADGROUP, XCLAIM or XRANGE's
-- field list, for
-- the job `jid` (its id when the caller knows it) in entry `eid` on
-- `level`; nil for a heavy entry (i only).
local function light_fields(list, level, eid, jid)
  if not list or #list <= 2 then return nil end
  local f = {}
  for n = 1, #list, 2 do f[list[n]] = list[n + 1] end
  if f.i then
    f.ix = true
  else
    f.i = jid or light_id(level, eid)
  end
  if f.o then f.r, f.b = string.match(f.o, '^([^,]*,[^,]*),(.*)$') end
  return f
end

-- The job id an entry holds or is: `list` its field list.
local function entry_job(list, level, eid)
  if list[1] == 'i' then return list[2] end
  return light_id(level, eid)
end

-- The fields of entry `eid` on `level` (nil when it was deleted).
local function entry_list(level, eid)
  local r = redis.call('XRANGE', stream_key(level), eid, eid)
  return r[1] and r[1][2]
end

-- Give a light job (fields `f`, entry `eid` on `level`) its hash, as an
-- active job of `worker` on its first attempt under fence 1 (or, with
-- worker nil, as a job waiting for its first attempt), and drop it from
-- the index of the version before. `ct`: the claim call that activated
-- it, if known.
local function materialize(base, level, eid, f, worker, ct)
  local jk = base .. 'job:' .. f.i
  local created = string.match(eid, '^%d+')
  if worker then
    redis.call('HSET', jk, 'payload', f.p, 'prio', level, 'bo', f.b, 'run', f.r .. ',' .. created,
      'state', 'active', 'att', '1', 'fence', '1', 'wk', worker)
  else
    redis.call('HSET', jk, 'payload', f.p, 'prio', level, 'bo', f.b, 'run', f.r .. ',' .. created,
      'state', 'waiting')
  end
  if f.k then redis.call('HSET', jk, 'idem', f.k) end
  if ct then redis.call('HSET', jk, 'ct', ct) end
  if f.ix then redis.call('HDEL', base .. 'ix', f.i) end
  return jk
end

-- Put a light job (fields `f`, entry `eid` on `level`) back at the end of
-- its level, never run: its id names its old entry, so it goes back as a
-- heavy waiting job under the same id. The caller acknowledged the entry.
local function requeue_light(base, level, eid, f)
  materialize(base, level, eid, f, nil, nil)
  redis.call('XADD', stream_key(level), '*', 'i', f.i)
end

-- Stream ids compare as two integers, milliseconds then sequence.
local function id_less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, bm = tonumber(am), tonumber(bm)
  return am < bm or (am == bm and tonumber(as) < tonumber(bs))
end

-- How far (ms) the oldest pending entry may lag behind the newest
-- acknowledged one before acknowledged entries are deleted one by one.
local LINGER_MS = 2000

-- The consumer group's last-delivered id on `stream`.
local function last_delivered(stream)
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == GROUP then return info['last-delivered-id'] end
  end
  return '0-0'
end

-- Drop acknowledged entries from a stream. They are not deleted one by one:
-- XDEL finds each id by scanning its stream node from the start, which was
-- 16 % of Redis's work per job (bench/redis-instructions.sh). Instead the
-- stream is trimmed behind its oldest pending entry, whole nodes at a time
-- (MINID ~): every entry before the oldest pending one has been delivered
-- and acknowledged. With nothing pending, everything before the newest
-- acknowledged entry is done. A few acknowledged entries linger until their
-- node is full, which is why counts and listings read the group (lag,
-- pending list), never the stream's length.
--
-- A long-running job holds the trim back, so while the oldest pending entry
-- is more than LINGER_MS older than the newest acknowledged one, this
-- batch's entries are deleted one by one as well: memory stays bounded
-- whatever the jobs' run times. The group's last-delivered entry is not
-- deleted yet (a tombstone there would make Redis unable to tell the
-- group's lag): its id is kept in the meta hash (field `lg<stream key>`)
-- and deleted by the next such call, once newer entries were delivered.
--
-- `newest`: the newest id of this call's entries on the stream when the
-- caller knows it (settle's caller sends it), else nil (found here).
local function trim_acked(stream, acked, newest)
  if not newest then
    for _, eid in ipairs(acked) do
      if not newest or id_less(newest, eid) then newest = eid end
    end
  end
  local oldest = redis.call('XPENDING', stream, GROUP, '-', '+', 1)[1]
  local bound = newest
  if oldest then
    bound = oldest[1]
    if newest and tonumber(string.match(newest, '^%d+')) - tonumber(string.match(bound, '^%d+')) > LINGER_MS then
      local last = last_delivered(stream)
      local field = 'lg' .. stream
      local kept = redis.call('HGET', KEYS[1], field)
      local doomed = {}
      if kept and id_less(kept, last) then
        table.insert(doomed, kept)
        kept = nil
      end
      for _, eid in ipairs(acked) do
        if id_less(eid, last) then
          table.insert(doomed, eid)
        elseif eid == last then
          kept = eid
        end
      end
      if #doomed > 0 then redis.call('XDEL', stream, unpack(doomed)) end
      if kept then
        redis.call('HSET', KEYS[1], field, kept)
      else
        redis.call('HDEL', KEYS[1], field)
      end
    end
  end
  if bound then redis.call('XTRIM', stream, 'MINID', '~', bound) end
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
    redis.call('ZADD', base .. 'delayed', int(now + delay), jid)
    redis.call('HSET', jk, 'state', 'delayed', 'due', int(now + delay))
  end
end

-- Move a job to the dead letters, keeping at most `cap` of them: the oldest
-- beyond the cap are deleted with their job hashes, so memory stays bounded.
local function bury(base, jk, jid, reason, cap, now)
  redis.call('HSET', jk, 'state', 'dead', 'err', reason, 'fat', int(now))
  redis.call('PERSIST', jk)
  local dead = base .. 'dead'
  redis.call('ZADD', dead, int(now), jid)
  local excess = redis.call('ZCARD', dead) - cap
  if excess > 0 then
    local oldest = redis.call('ZRANGE', dead, 0, excess - 1)
    for _, old in ipairs(oldest) do
      redis.call('DEL', base .. 'job:' .. old)
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
  -- `max` stands apart in hashes written before `run` held it.
  local f = redis.call('HMGET', jk, 'att', 'run', 'bo', 'prio', 'max')
  local att = tonumber(f[1]) or 0
  local max = tonumber(string.match(f[2] or '', '^(%d+),')) or tonumber(f[5]) or 1
  local stats = base .. 'stats'
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
