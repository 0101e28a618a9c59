-- ARGV: node. Returns {"unknown"} or {"ok", reservations...} (the evicted ones).
local id = ARGV[1]
local hot = get_hot(id)
if not hot then return {"unknown"} end
unfile(id, hot)
leave_shape(hot[9])
local out = {"ok"}
for _, job in ipairs(redis.call("ZRANGE", njkey(id), 0, -1)) do
  local res = reservation(job)
  if res then
    table.insert(out, res)
    if res[8] > 0 then
      redis.call("ZREM", LEASES, job)
      if res[7] ~= "" then redis.call("SREM", okey(res[7]), job) end
    end
  end
  redis.call("DEL", rkey(job))
end
redis.call("DEL", njkey(id), nkey(id))
redis.call("ZREM", NODES, id)
redis.call("HDEL", HOT, id)
redis.call("HINCRBY", STATS, "evicted", #out - 1)
return out
