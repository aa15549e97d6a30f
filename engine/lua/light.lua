-- light.lua: reading light and heavy stream entries, making a light job
-- heavy, and dropping acknowledged entries (after common.lua; see
-- common.lua for the two layouts).

-- A light entry's fields as a table (p, o, k, and i: its id, and r and
-- b: its options split), from XREADGROUP, XCLAIM or XRANGE's field list,
-- for the job `jid` (its id when the caller knows it) in entry `eid` on
-- `level`; nil for a heavy entry (it begins with i, the job's id).
local function light_fields(list, level, eid, jid)
  if not list or list[1] == 'i' then return nil end
  local f = {}
  for n = 1, #list, 2 do f[list[n]] = list[n + 1] end
  f.i = jid or light_id(level, eid)
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
-- worker nil, as a job waiting for its first attempt). `ct`: the claim
-- call that activated it, if known.
local function materialize(base, level, eid, f, worker, ct)
  local jk = job_key(f.i)
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

-- Whether the group has read entry `eid` on `level` (delivered it, to be
-- pending or acknowledged since); an entry it has not read is waiting.
local function read_by_group(level, eid)
  return not id_less(last_delivered(stream_key(level)), eid)
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
      if #doomed > 0 then
        in_parts(doomed, function(part) return redis.call('XDEL', stream, unpack(part)) end)
      end
      if kept then
        redis.call('HSET', KEYS[1], field, kept)
      else
        redis.call('HDEL', KEYS[1], field)
      end
    end
  end
  if bound then redis.call('XTRIM', stream, 'MINID', '~', bound) end
end

-- `cx` (cancel.lua): job id -> the level of each of its cancelled entries
-- that the group has not read yet, one word per entry ("3", or "3 3" for
-- a job cancelled, re-driven and cancelled again before a claim read the
-- first entry), so that waiting counts subtract every one of them.
local function cx_mark(jid, level)
  local marks = redis.call('HGET', KEY.cx, jid)
  redis.call('HSET', KEY.cx, jid, marks and (marks .. ' ' .. level) or level)
end

-- Take one mark of `jid` from `cx`, for an entry of it read now; whether
-- there was one (the entry is then skipped).
local function cx_take(jid)
  local marks = redis.call('HGET', KEY.cx, jid)
  if not marks then return false end
  local rest = string.match(marks, '^%S+ (.+)$')
  if rest then
    redis.call('HSET', KEY.cx, jid, rest)
  else
    redis.call('HDEL', KEY.cx, jid)
  end
  return true
end
