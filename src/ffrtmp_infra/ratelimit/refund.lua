-- Give back `cost * interval` microseconds of a GCRA key (undo an admitted hit).
-- KEYS[1] the key; ARGV[1] cost * interval in microseconds. Used when another limit
-- of the same request rejected, so the request consumes nothing.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
tat = tat - tonumber(ARGV[1])
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX', math.ceil((tat - now) / 1000))
end
return 1
