-- remove_consumers.lua: delete consumers of the queue's groups that hold no
-- pending entries, in one atomic step per call.
--
-- KEYS[1]        meta hash; KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua)
-- ARGV[1]        key base
-- ARGV[2]        max idle ms: consumers idle longer are removed; -1 removes
--                only the consumer named in ARGV[3] (a worker's own exit)
-- ARGV[3]        with max idle >= 0: a consumer never to remove (the caller);
--                with -1: the consumer to remove
-- Reply          consumers removed
--
-- A removed consumer that holds nothing on any level also loses its
-- announced visibility timeout (meta field `vt:<consumer>`) and its last
-- claim's token (`ct:<consumer>`).
--
-- Checking a consumer's pending count and deleting it must be one step:
-- XGROUP DELCONSUMER drops the consumer's pending entries from the group,
-- and an entry that became pending between a separate XINFO and the delete
-- would leave its job active with no pending entry, never reclaimed.

fixed_keys()
local max_idle, name = tonumber(ARGV[2]), ARGV[3]
local removed = 0
-- Names that still hold entries somewhere, and names removed somewhere.
local holds, gone = {}, {}
if max_idle < 0 then gone[name] = true end
local level = 0
while KEYS[FIRST_STREAM + level] do
  local stream = stream_key(level)
  if redis.call('EXISTS', stream) == 1 then
    local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', stream, GROUP)
    if ok then
      for _, c in ipairs(consumers) do
        local info = {}
        for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
        local pending, idle, cname = tonumber(info['pending']) or 1, tonumber(info['idle']) or 0, info['name']
        local wanted
        if max_idle < 0 then
          -- The worker's name, and the name its blocking reads use.
          wanted = cname == name or cname == name .. DELIVERED
        else
          wanted = cname ~= name and idle > max_idle
        end
        if pending > 0 then holds[cname] = true end
        if wanted and pending == 0 then
          redis.call('XGROUP', 'DELCONSUMER', stream, GROUP, cname)
          removed = removed + 1
          gone[cname] = true
        end
      end
    end
  end
  level = level + 1
end
-- A consumer that holds nothing anywhere any more no longer needs its
-- visibility timeout announced (reclaim.lua reads `vt:<consumer>`).
-- Nor its last claim's token (`ct:<consumer>`).
for cname in pairs(gone) do
  if not holds[cname] and not holds[cname .. DELIVERED] then
    redis.call('HDEL', KEYS[1], 'vt:' .. cname, 'ct:' .. cname)
  end
end
return removed
