-- migrate.lua: bring a queue written by an earlier storage version to this
-- one, a page per call (docs/design.md, "Storage versions").
--
-- KEYS[1]        meta hash; KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua)
-- ARGV[1]        key base
-- ARGV[2]        page size: keys (or index fields) looked at per call
-- ARGV[3]        this storage version
-- Reply          1 when the queue is at this version (recorded in the meta
--                hash as `sv`), 0 when pages remain, -1 when a later
--                version wrote it (nothing is changed)
--
-- The earlier versions:
--   1  job hashes kept max attempts, timeout and creation time apart
--      (`max`, `to`, `cat`); this version holds them in `run`
--      ("max_attempts,timeout_ms,created_ms").
--   2  light entries began with the job's id and kept their options apart
--      (`i p r b [k]`), and the hash `ix` mapped each id to its place
--      ("<level> <entry id>"). Each still indexed is given a hash here, as
--      materialize (light.lua) would, in the state its entry shows: waiting
--      (not read by the group yet, or delivered to a blocking reads' name
--      and never activated), or active for the worker it is pending for.
--      Its entry, which begins with `i`, is then read as a heavy job's. One
--      whose entry was read and acknowledged finished; one whose entry is
--      gone is no job. Either way its index field goes.
--
-- Progress is recorded in the meta hash (`sv_step`: "hashes <cursor>
-- <run id>", then "index"), so a process stopped half-way leaves the rest
-- to the next one that opens the queue. Every page is safe to run twice:
-- a hash that has `run` is not touched, and an index field whose job has
-- a hash only goes. A SCAN cursor means something only to the Redis
-- process that made it (its run id is kept with it): on another one (a
-- failover, the slot moved to another node) the walk starts again. The
-- walk visits the whole node's keys, matching the queue's. The index is
-- read from its start each time, its fields deleted as they are handled,
-- until it is empty. Processes of the earlier versions must be stopped
-- before this version opens the queue: they would go on writing the old
-- layouts.

-- (cx: light.lua's helpers name it; this script does not use it.)
fixed_keys('ix', 'cx')
local base, page, version = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local recorded = redis.call('HGET', KEYS[1], 'sv')
if recorded == version then return 1 end
if tonumber(recorded or '0') > tonumber(version) then return -1 end
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local step = redis.call('HGET', KEYS[1], 'sv_step') or ''
local phase, cursor, made_by = string.match(step, '^(%a+) (%d+) ?(%x*)$')
if phase == 'hashes' and made_by ~= run_id then cursor = '0' end
if phase ~= 'hashes' and phase ~= 'index' then phase, cursor = 'hashes', '0' end

-- Version 1: `max`, `to` and `cat` into `run`.
local function hashes()
  local pattern = string.gsub(base, '[%*%?%[%]\\]', '\\%0') .. 'job:*'
  local r = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', page, 'TYPE', 'hash')
  for _, jk in ipairs(r[2]) do
    local f = redis.call('HMGET', jk, 'run', 'max', 'to', 'cat')
    if not f[1] then
      redis.call('HSET', jk, 'run', (f[2] or '1') .. ',' .. (f[3] or '0') .. ',' .. (f[4] or '0'))
    end
    if f[2] or f[3] or f[4] then redis.call('HDEL', jk, 'max', 'to', 'cat') end
  end
  return r[1]
end

-- Version 2: each indexed light job given a hash, its index field removed.
local function index()
  local r = redis.call('HSCAN', KEY.ix, '0', 'COUNT', page)
  local fields = r[2]
  for n = 1, #fields, 2 do
    local jid, place = fields[n], fields[n + 1]
    local level, eid = string.match(place, '^(%d) (%d+%-%d+)$')
    local jk = job_key(jid)
    local list = level and stream_key(level) and redis.call('EXISTS', jk) == 0 and entry_list(level, eid)
    if list then
      local f = {}
      for k = 1, #list, 2 do f[list[k]] = list[k + 1] end
      local p = redis.call('XPENDING', stream_key(level), GROUP, eid, eid, 1)[1]
      local state = nil
      if p and string.sub(p[2], -#DELIVERED) ~= DELIVERED then
        state = 'active'
      elseif p or not read_by_group(level, eid) then
        state = 'waiting'
      end
      if state and f.i == jid and f.p and f.r and f.b then
        redis.call('HSET', jk, 'payload', f.p, 'prio', level, 'bo', f.b,
          'run', f.r .. ',' .. string.match(eid, '^%d+'), 'state', state)
        if state == 'active' then redis.call('HSET', jk, 'att', '1', 'fence', '1', 'wk', p[2]) end
        if f.k then redis.call('HSET', jk, 'idem', f.k) end
      end
    end
    redis.call('HDEL', KEY.ix, jid)
  end
  return redis.call('EXISTS', KEY.ix) == 0
end

if phase == 'hashes' then
  local next_cursor = hashes()
  if next_cursor == '0' then
    redis.call('HSET', KEYS[1], 'sv_step', 'index 0')
  else
    redis.call('HSET', KEYS[1], 'sv_step', 'hashes ' .. next_cursor .. ' ' .. run_id)
  end
  return 0
end
if not index() then return 0 end
redis.call('HSET', KEYS[1], 'sv', version)
redis.call('HDEL', KEYS[1], 'sv_step')
return 1
