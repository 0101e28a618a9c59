-- Token bucket (GCRA) for one or more limits, all-or-nothing, on the server's clock.
--
-- KEYS[i]  one key per limit (its theoretical arrival time, TAT, in microseconds)
-- ARGV[i]  "cost interval tolerance" of limit i: the cost of this hit in units, the
--          emission interval (1 / rate) and the tolerance (burst * interval), both in
--          microseconds (one argument per limit: less for the client to send)
--
-- Returns one string of integers, "allowed remaining_1 retry_after_us_1 reset_after_us_1
-- ...": one bulk reply is much cheaper for clients to read than an array. When any
-- limit rejects, nothing is written: a rejected hit consumes nothing anywhere.
-- TIME comes from the server so every application host shares one clock; Redis >= 5
-- replicates scripts by effects, so reading TIME before a write is safe.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS

if n == 1 then
  -- One limit (the common case): the same arithmetic without the tables.
  local cost, interval, tolerance = string.match(ARGV[1], '^(%S+) (%S+) (%S+)$')
  interval = tonumber(interval)
  tolerance = tonumber(tolerance)
  local tat = tonumber(redis.call('GET', KEYS[1])) or now
  if tat < now then tat = now end
  local new_tat = tat + tonumber(cost) * interval
  local allowed, retry = 1, 0
  if new_tat - tolerance > now then
    allowed, retry = 0, new_tat - tolerance - now
  else
    tat = new_tat
    if tat > now then
      redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX', math.ceil((tat - now) / 1000))
    end
  end
  local remaining = math.floor((tolerance - (tat - now)) / interval + 1e-9)
  if remaining < 0 then remaining = 0 end
  return string.format('%d %d %d %d', allowed, remaining, math.ceil(retry), math.ceil(tat - now))
end

local allowed = 1
local tats, news, intervals, tolerances = {}, {}, {}, {}
for i = 1, n do
  local cost, interval, tolerance = string.match(ARGV[i], '^(%S+) (%S+) (%S+)$')
  interval = tonumber(interval)
  tolerance = tonumber(tolerance)
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local new_tat = tat + tonumber(cost) * interval
  tats[i], news[i], intervals[i], tolerances[i] = tat, new_tat, interval, tolerance
  if new_tat - tolerance > now then allowed = 0 end
end
local out = {allowed}
for i = 1, n do
  local interval, tolerance, tat = intervals[i], tolerances[i], tats[i]
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
  out[i + 1] = string.format('%d %d %d', remaining, math.ceil(retry), math.ceil(tat - now))
end
return table.concat(out, ' ')
