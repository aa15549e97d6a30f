-- rate_window.lua: count one request against a sliding-window limit.
--
-- KEYS[1]        counter of the current window; KEYS[2] of the previous
--                one (both share a hash tag)
-- ARGV[1]        limit: most requests per window
-- ARGV[2]        window length, ms
-- ARGV[3]        start of the current window, ms (a multiple of the length)
-- Reply          0 when the request is allowed (and counted), otherwise the
--                ms to wait before one would be
--
-- The sliding window is approximated from two fixed windows: the previous
-- window's count weighted by how much of it still overlaps the sliding
-- window, plus the current count (the Cloudflare approach: exact enough,
-- two small keys per client instead of one entry per request).

local limit, len, start = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
if now < start then now = start end
local elapsed = math.min(now - start, len)
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local overlap = (len - elapsed) / len
if prev * overlap + cur + 1 <= limit then
  redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], len * 2)
  return 0
end
-- Wait until the previous window's share has shrunk enough, or, when the
-- current window alone is full, until the next window starts.
if cur + 1 > limit or prev == 0 then
  return math.max(1, len - elapsed)
end
local excess = prev * overlap + cur + 1 - limit
return math.max(1, math.min(len - elapsed, math.ceil(excess * len / prev)))
