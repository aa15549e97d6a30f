-- common.lua: conventions and helpers prepended to every script (see
-- scripts.rs); light.lua and outcomes.lua follow it in the scripts that
-- need them. Each helper is a closure made again on every call, so a
-- script includes only what it uses.
--
-- Conventions shared by all scripts:
--   KEYS[1]      the queue's meta hash; it routes the call to the queue's
--                Redis Cluster slot.
--   KEYS[2]      the slot probe, a key of the queue's slot that never
--                exists (see fixed_keys below).
--   KEYS[3 ..]   the fixed keys the script declares (fixed_keys below):
--                every key a script touches is declared, as Redis Cluster
--                requires.
--   then         priority streams (from FIRST_STREAM), most urgent first:
--                all ten levels, or fewer where a script says so (enqueue).
--                Keys made from an id (job hashes, call records,
--                idempotency keys, throughput hours) are derived from the
--                key base; they share its hash tag, so its slot.
--   ARGV[1]      the queue's key base, e.g. "sluice:{emails}:". Job hashes and
--                the other keys of the queue are derived from it and share
--                the "{emails}" hash tag, so they live in the same slot.
-- Times are Redis server milliseconds (TIME), so every machine of a fleet
-- agrees on due times whatever its own clock says.

local GROUP = 'workers'

-- The fixed keys a script touches, by name (KEYS[3 ..]), and where its
-- streams begin. A script declares them with its first statement,
-- `fixed_keys('stats', 'delayed')`, and store/calls.rs reads that line to
-- pass them in that order (scripts.rs checks that every `KEY.<name>` a
-- script's text uses is declared). Names: stats (counters), delayed
-- (delayed jobs and retries by due time), dead (dead letters by time of
-- death), cr and cx (cancels, see below), ix (the light-job index of
-- storage version 2, read by ensure.lua and migrate.lua only).
--
-- No queue script runs while the queue's slot migrates to another Redis
-- Cluster node. In a migrating slot a key may be on either node, and a
-- script touching one its node does not hold (a job hash made from an id,
-- a call record, an idempotency key) would fail, or on the importing node
-- read nil, where it stands, after it may have written. Reading them all
-- before the first write would cost a command per job on the hot path;
-- instead every call declares KEYS[2], a key that never exists: Redis
-- answers a call whose declared keys are not all on the node TRYAGAIN
-- (or ASK, then TRYAGAIN on the importing node) before the script starts,
-- on either node, exactly while the slot migrates. The client retries
-- that with backoff until the slot answers from its new node.
local KEY, FIRST_STREAM = {}, 3
local function fixed_keys(...)
  local names = { ... }
  for i = 1, #names do KEY[names[i]] = KEYS[i + 2] end
  FIRST_STREAM = 3 + #names
end

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
--          stream entry begins with i (the id).
--   Queues of earlier storage versions are brought to this one when a
--   handle opens them (ensure.lua, migrate.lua), so no script reads their
--   layouts.
-- A light job becomes heavy (materialize) the first time it needs state.

-- Keys made from an id, under the key base (ARGV[1] of every queue
-- script), in the queue's slot: a heavy job's hash and a call's record.
local function job_key(jid)
  return ARGV[1] .. 'job:' .. jid
end
local function call_key(token)
  return ARGV[1] .. 'call:' .. token
end

-- The call-record protocol (docs/design.md, `call:<token>`). A call that
-- changes state carries a token that stays the same on every retry of it,
-- and records its reply under that token, so a retry whose first run went
-- through answers the record instead of running again. With it, the
-- caller names its earlier calls whose replies it received ('' for none):
-- their records are no longer needed.
local function forget_call(token)
  if token ~= '' then redis.call('DEL', call_key(token)) end
end
local function recorded_reply(token)
  return redis.call('GET', call_key(token))
end
local function record_reply(token, reply, ms)
  redis.call('SET', call_key(token), reply, 'PX', ms)
end

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
  if ep and ep == redis.call('HGET', KEYS[1], 'ep') and KEYS[FIRST_STREAM + tonumber(level)] then
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
-- `cx`: job id -> the level of each of its cancelled entries (light.lua's
-- cx_mark and cx_take), cancelled jobs whose stream entry the group has
-- not read yet; the claim that reads the entry skips it and drops the id.
local CANCELLED = 'cancelled by an operator'

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
  return KEYS[FIRST_STREAM + tonumber(level)]
end

-- `call(part)` for `items` in parts small enough to unpack: Lua's unpack
-- fails past about 8,000 values (its C stack), so a command over a list
-- of any length goes in parts of UNPACK_MAX. Returns the sum of the calls'
-- integer replies. A list that fits is passed as it is, without a copy.
local UNPACK_MAX = 4000
local function in_parts(items, call)
  if #items <= UNPACK_MAX then return call(items) end
  local total = 0
  for i = 1, #items, UNPACK_MAX do
    local part = {}
    for k = i, math.min(i + UNPACK_MAX - 1, #items) do part[#part + 1] = items[k] end
    total = total + call(part)
  end
  return total
end
