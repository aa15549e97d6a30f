-- delete_dead.lua: delete dead letters and their job hashes.
--
-- KEYS[1]        meta hash; KEYS[2 ..] the fixed keys it declares (common.lua)
-- ARGV[1]        key base
-- ARGV[2 ..]     job ids; with none, the oldest 1000 (the caller loops until 0)
-- Reply          number of dead letters deleted (with the idempotency
--                key of each, while it still names that job)

fixed_keys('dead')
local base = ARGV[1]
local dead = KEY.dead
local ids = {}
for i = 2, #ARGV do table.insert(ids, ARGV[i]) end
if #ids == 0 then ids = redis.call('ZRANGE', dead, 0, 999) end
local deleted = 0
for _, jid in ipairs(ids) do
  local jk = job_key(jid)
  local idem = redis.call('HGET', jk, 'idem')
  if redis.call('ZREM', dead, jid) == 1 then
    redis.call('DEL', jk)
    -- Its idempotency key no longer answers with a job that is gone: an
    -- enqueue under it makes a new job.
    if idem and redis.call('GET', base .. 'idem:' .. idem) == jid then
      redis.call('DEL', base .. 'idem:' .. idem)
    end
    deleted = deleted + 1
  end
end
return deleted
