-- enqueue.lua: add one job or a batch, in one call.
--
-- KEYS[1]        meta hash (routing); KEYS[2 ..] priority streams
-- ARGV[1]        key base
-- ARGV[2]        number of jobs N
-- ARGV[3 ..]     9 fields per job:
--                  id, payload, priority, delay_ms, max_attempts,
--                  backoff "base_ms,factor,cap_ms,jitter", timeout_ms (0 = none),
--                  idempotency key ('' = none), idempotency window ms
-- Reply          2 fields per job: the job id, and 1 when an idempotency key
--                matched an earlier job (the id is then that job's), else 0.
--
-- A job whose id already exists is not added again: a client that retries a
-- call whose reply it lost cannot enqueue twice. Every option was checked
-- by the caller (options.rs bounds every duration), so no command below
-- fails after the first write: the batch is written whole or not at all.

local base = ARGV[1]
local n = tonumber(ARGV[2])
local now = now_ms()
local created = int(now)
local out = {}
local added = 0
for i = 0, n - 1 do
  local o = 3 + i * 9
  local jid, payload, prio, delay = ARGV[o], ARGV[o + 1], ARGV[o + 2], tonumber(ARGV[o + 3])
  local idem, window = ARGV[o + 7], ARGV[o + 8]
  local existing = nil
  if idem ~= '' then
    local ik = base .. 'idem:' .. idem
    if not redis.call('SET', ik, jid, 'NX', 'PX', window) then
      existing = redis.call('GET', ik)
    end
  end
  local jk = base .. 'job:' .. jid
  if existing then
    table.insert(out, existing)
    table.insert(out, existing == jid and 0 or 1)
  elseif redis.call('EXISTS', jk) == 1 then
    table.insert(out, jid)
    table.insert(out, 0)
  else
    -- One HSET per job (schedule() would write the hash a second time),
    -- with as few fields as can be: each field of a new hash costs a
    -- listpack search and a reallocation, and each field a claim reads
    -- costs as much again. What a claim needs and nothing changes goes in
    -- one field, `run` = "max_attempts,timeout_ms,created_ms". Absent
    -- fields have defaults that every reader applies: attempt and fence 0;
    -- state 'waiting' and due time = creation time for a job ready at once.
    local run = ARGV[o + 4] .. ',' .. ARGV[o + 6] .. ',' .. created
    if delay > 0 then
      local due = int(now + delay)
      redis.call('HSET', jk, 'payload', payload, 'prio', prio, 'bo', ARGV[o + 5], 'run', run,
        'state', 'delayed', 'due', due)
      redis.call('ZADD', base .. 'delayed', due, jid)
    else
      redis.call('HSET', jk, 'payload', payload, 'prio', prio, 'bo', ARGV[o + 5], 'run', run)
      redis.call('XADD', stream_key(prio), '*', 'i', jid)
    end
    if idem ~= '' then redis.call('HSET', jk, 'idem', idem) end
    added = added + 1
    table.insert(out, jid)
    table.insert(out, 0)
  end
end
if added > 0 then
  redis.call('HINCRBY', base .. 'stats', 'enqueued', added)
elseif n > 0 then
  -- Nothing new: a retry of a call whose reply was lost, or idempotency
  -- hits. It still writes, so that a WAIT on this connection (Replicated
  -- durability) waits for the replicas to reach this point, which lies
  -- after the first call's write, instead of answering at once for a
  -- connection that wrote nothing.
  redis.call('HINCRBY', base .. 'stats', 'enqueue_repeats', 1)
end
return out
