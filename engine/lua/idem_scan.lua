-- idem_scan.lua: one page of the queue's idempotency mappings, for a backup.
--
-- KEYS[1]        meta hash (routing: the queue's slot)
-- ARGV[1]        key base
-- ARGV[2]        SCAN cursor ('0' to start)
-- ARGV[3]        SCAN COUNT
-- Reply          { next cursor ('0' when done), then per mapping: the
--                idempotency key, its job id, its remaining ms }
--
-- The scan runs on the node that holds the queue's slot, a page per call,
-- so no call blocks Redis for long. Read-only: safe to replay.

fixed_keys()
local base = ARGV[1]
local prefix = base .. 'idem:'
local page = redis.call('SCAN', ARGV[2], 'MATCH', prefix .. '*', 'COUNT', tonumber(ARGV[3]))
local out = { page[1] }
for _, key in ipairs(page[2]) do
  local id = redis.call('GET', key)
  local left = redis.call('PTTL', key)
  if id and left > 0 then
    out[#out + 1] = string.sub(key, #prefix + 1)
    out[#out + 1] = id
    out[#out + 1] = left
  end
end
return out
