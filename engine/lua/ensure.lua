-- ensure.lua: create the queue's priority streams and their consumer group
-- where missing, and tell whether the queue is at this storage version.
-- Idempotent; run when a queue handle opens and after Redis lost its data
-- (a NOGROUP error).
--
-- KEYS[1]        meta hash; KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua)
-- ARGV[1]        key base
-- ARGV[2]        an epoch for the queue (16 hex digits, made at random),
--                recorded only when the queue has none (see common.lua)
-- ARGV[3]        this storage version
-- Reply          1 when the queue is at this version, 0 when it holds data
--                an earlier version wrote (migrate.lua brings it over), -1
--                when a later version wrote it (this one must not touch it)
--
-- Groups start at id 0, so entries added before the group existed are read.
-- A queue none of whose streams existed holds nothing an earlier version
-- wrote: it starts at this version.

fixed_keys('ix')
local version = ARGV[3]
redis.call('HSETNX', KEYS[1], 'ep', ARGV[2])
local existed = 0
local level = 0
while KEYS[FIRST_STREAM + level] do
  existed = existed + redis.call('EXISTS', stream_key(level))
  redis.pcall('XGROUP', 'CREATE', stream_key(level), GROUP, '0', 'MKSTREAM')
  level = level + 1
end
local recorded = redis.call('HGET', KEYS[1], 'sv')
if recorded == version then return 1 end
if tonumber(recorded or '0') > tonumber(version) then return -1 end
if not recorded and existed == 0 and redis.call('EXISTS', KEY.ix) == 0 then
  redis.call('HSET', KEYS[1], 'sv', version)
  return 1
end
return 0
