-- ensure.lua: create the queue's priority streams and their consumer group
-- where missing. Idempotent; run when a queue handle opens and after Redis
-- lost its data (a NOGROUP error).
--
-- KEYS[1]        meta hash; KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua)
-- ARGV[1]        key base
-- ARGV[2]        an epoch for the queue (16 hex digits, made at random),
--                recorded only when the queue has none (see common.lua)
-- Reply          number of groups created
--
-- Groups start at id 0, so entries added before the group existed are read.

fixed_keys()
redis.call('HSETNX', KEYS[1], 'ep', ARGV[2])
local created = 0
local level = 0
while KEYS[FIRST_STREAM + level] do
  local r = redis.pcall('XGROUP', 'CREATE', stream_key(level), GROUP, '0', 'MKSTREAM')
  if type(r) == 'table' and r.ok then created = created + 1 end
  level = level + 1
end
return created
