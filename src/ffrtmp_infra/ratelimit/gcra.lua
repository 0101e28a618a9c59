-- Token bucket (GCRA) for one or more limits, all-or-nothing, on the server's clock.
--
-- KEYS[i]      one key per limit (its theoretical arrival time, TAT, in microseconds)
-- ARGV[3i-2]   cost of this hit on limit i, in units
-- ARGV[3i-1]   emission interval of limit i (1 / rate), in microseconds
-- ARGV[3i]     tolerance of limit i (burst * interval), in microseconds
--
-- Returns {allowed, remaining_1, retry_after_us_1, reset_after_us_1, ...}. When any
-- limit rejects, nothing is written: a rejected hit consumes nothing anywhere.
-- TIME comes from the server so every application host shares one clock; Redis >= 5
-- replicates scripts by effects, so reading TIME before a write is safe.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local allowed = 1
local tats, news = {}, {}
for i = 1, n do
  local cost = tonumber(ARGV[3 * i - 2])
  local interval = tonumber(ARGV[3 * i - 1])
  local tolerance = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  tats[i] = tat
  news[i] = new_tat
  if new_tat - tolerance > now then allowed = 0 end
end
local out = {allowed}
for i = 1, n do
  local interval = tonumber(ARGV[3 * i - 1])
  local tolerance = tonumber(ARGV[3 * i])
  local tat = tats[i]
  local retry = 0
  if allowed == 1 then
    tat = news[i]
    if tat > now then
      redis.call('SET', KEYS[i], string.format('%.17g', tat), 'PX', math.ceil((tat - now) / 1000))
    end
  else
    retry = news[i] - tolerance - now
    if retry < 0 then retry = 0 end
  end
  local remaining = math.floor((tolerance - (tat - now)) / interval + 1e-9)
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil(retry)
  out[#out + 1] = math.ceil(tat - now)
end
return out
