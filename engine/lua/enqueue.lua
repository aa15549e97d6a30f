-- enqueue.lua: add one job or a batch, in one call.
--
-- KEYS[1]        meta hash (routing); KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua), from
--                level 0 to the least urgent level of the batch's jobs
-- ARGV[1]        key base
-- ARGV[2]        call token: made by the client before its first try and
--                sent again on every retry of this call
-- ARGV[3]        how long (ms) the record of this call is kept
-- ARGV[4]        C, then C tokens of earlier calls of this client whose
--                replies arrived: their records are deleted
-- then           S, then S segments of the batch, in its order:
--                'j' and one job's 8 fields:
--                  id (a delayed job's; see below), payload, priority,
--                  delay_ms, run "max_attempts,timeout_ms" (timeout 0 =
--                  none), backoff "base_ms,factor,cap_ms,jitter",
--                  idempotency key ('' = none), idempotency window ms
--                'q', priority, options "max_attempts,timeout_ms,base_ms,
--                  factor,cap_ms,jitter", count K, and K payloads: a
--                  run of jobs ready at once, without an idempotency key,
--                  with the same options (the common batch: one argument
--                  per job)
-- Reply          one text, 2 words per job joined by spaces, in the batch's
--                order: the job id, and '1' when an idempotency key matched
--                an earlier job (the id is then that job's), else '0'. The
--                reply is also the call's record. (One value instead of two
--                per job: the client's parser pays per value, and Redis per
--                reply element.)
--
-- Safe to replay: the call leaves a record (`call:<token>`) of its reply,
-- and a retry of a call whose reply was lost finds it, adds nothing and
-- answers what the first run answered. The client's next call deletes it;
-- else it expires once no retry can come. Every option was checked by the
-- caller (options.rs bounds every duration), so no command below fails
-- after the first write: the batch is written whole or not at all.
--
-- A job ready at once is light (see common.lua): one XADD, and its id is
-- its entry's place; the id the caller made is not used. A delayed job is
-- heavy from the start, under the caller's id: its hash waits in `delayed`.

fixed_keys('stats', 'delayed')
local base = ARGV[1]
local token, record_ms = ARGV[2], ARGV[3]
local out = {}
local confirmed = tonumber(ARGV[4])
for c = 1, confirmed do
  forget_call(ARGV[4 + c])
end

local recorded = recorded_reply(token)
if recorded then
  -- It still writes, so that a WAIT on this connection (Replicated
  -- durability) waits for the replicas to reach this point, which lies
  -- after the first call's write, instead of answering at once for a
  -- connection that wrote nothing.
  redis.call('HINCRBY', KEY.stats, 'enqueue_repeats', 1)
  return recorded
end

-- Redis's clock, read once and only for a delayed job (a ready job's
-- creation time is its entry id's).
local now = nil
local function clock()
  if not now then now = now_ms() end
  return now
end
local added = 0
-- Light ids by level: "<epoch>-<level>-", then the entry id.
local id_prefix = {}
local function light_prefix(prio)
  local prefix = id_prefix[prio]
  if not prefix then
    prefix = epoch() .. '-' .. prio .. '-'
    id_prefix[prio] = prefix
  end
  return prefix
end

local o = 6 + confirmed
for _ = 1, tonumber(ARGV[5 + confirmed]) do
  if ARGV[o] == 'q' then
    local prio, options, k = ARGV[o + 1], ARGV[o + 2], tonumber(ARGV[o + 3])
    local stream, prefix = stream_key(prio), light_prefix(prio)
    for a = o + 4, o + 3 + k do
      local eid = redis.call('XADD', stream, '*', 'p', ARGV[a], 'o', options)
      local n = #out
      out[n + 1], out[n + 2] = prefix .. eid, '0'
    end
    added = added + k
    o = o + 4 + k
  else
    local jid, payload, prio, delay = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], tonumber(ARGV[o + 4])
    local run, backoff, idem = ARGV[o + 5], ARGV[o + 6], ARGV[o + 7]
    local ik = nil
    local existing = nil
    if idem ~= '' then
      ik = base .. 'idem:' .. idem
      existing = redis.call('GET', ik)
    end
    if existing then
      out[#out + 1] = existing
      out[#out + 1] = '1'
    else
      if delay > 0 then
        -- One HSET per job, with as few fields as can be: each field of a
        -- new hash costs a listpack search and a reallocation. `run` =
        -- "max_attempts,timeout_ms,created_ms" is what a claim needs and
        -- nothing changes.
        local jk = job_key(jid)
        local due = int(clock() + delay)
        redis.call('HSET', jk, 'payload', payload, 'prio', prio, 'bo', backoff,
          'run', run .. ',' .. int(clock()), 'state', 'delayed', 'due', due)
        if ik then redis.call('HSET', jk, 'idem', idem) end
        redis.call('ZADD', KEY.delayed, due, jid)
      else
        local eid
        local options = run .. ',' .. backoff
        if ik then
          eid = redis.call('XADD', stream_key(prio), '*', 'p', payload, 'o', options, 'k', idem)
        else
          eid = redis.call('XADD', stream_key(prio), '*', 'p', payload, 'o', options)
        end
        jid = light_prefix(prio) .. eid
      end
      if ik then redis.call('SET', ik, jid, 'PX', ARGV[o + 8]) end
      added = added + 1
      out[#out + 1] = jid
      out[#out + 1] = '0'
    end
    o = o + 9
  end
end
if added > 0 then
  redis.call('HINCRBY', KEY.stats, 'enqueued', added)
end
local reply = table.concat(out, ' ')
if #out > 0 then
  record_reply(token, reply, record_ms)
end
return reply
