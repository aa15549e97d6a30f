-- job_fields.lua: the fields of jobs by id, whatever their layout, as a
-- job hash would hold them (read only).
--
-- KEYS[1]        meta hash; KEYS[2 ..] the fixed keys it declares, then
--                the priority streams (common.lua)
-- ARGV[1]        key base
-- ARGV[2 ..]     job ids
-- Reply          per id, a list of field names and values; empty when there
--                is no such job
--
-- A heavy job is its hash. A light job (common.lua) is found at the entry
-- its id names and described from its stream entry and the pending list: active
-- while pending for a worker, waiting while pending for a blocking read's
-- name or not yet delivered, and otherwise finished (nothing is answered:
-- its acknowledged entry lingers until the stream is next trimmed).

fixed_keys('cx')
local base = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local jid = ARGV[i]
  local h = redis.call('HGETALL', job_key(jid))
  -- A light job cancelled while it waited, whose dead letter was deleted
  -- since: its entry waits to be skipped (`cx`), it is no job any more.
  if #h == 0 and redis.call('HEXISTS', KEY.cx, jid) == 0 then
    local level, eid = light_place(jid)
    local f = level and light_fields(entry_list(level, eid), level, eid, jid)
    if f then
      h = { 'payload', f.p, 'prio', level, 'bo', f.b, 'run', f.r .. ',' .. string.match(eid, '^%d+') }
      if f.k then
        h[#h + 1] = 'idem'
        h[#h + 1] = f.k
      end
      local p = redis.call('XPENDING', stream_key(level), GROUP, eid, eid, 1)[1]
      if p and string.sub(p[2], -#DELIVERED) ~= DELIVERED then
        for _, v in ipairs({ 'state', 'active', 'att', '1', 'fence', '0', 'wk', p[2] }) do h[#h + 1] = v end
      elseif p or not read_by_group(level, eid) then
        h[#h + 1] = 'state'
        h[#h + 1] = 'waiting'
      else
        -- Delivered and acknowledged: it completed, and its entry lingers
        -- until the stream is next trimmed (common.lua, trim_acked).
        h = {}
      end
    end
  end
  out[#out + 1] = h
end
return out
