-- ARGV: job. Returns the reservation it removed, or {} when the job held nothing.
local job = ARGV[1]
local res = reservation(job)
if not res then return {} end
local id = res[2]
local nk = nkey(id)
local hot = get_hot(id)
if hot then
  unfile(id, hot)
  hot[4], hot[5], hot[6] = hot[4] - res[3], hot[5] - res[4], hot[6] - res[5]
  put_hot(id, hot)
  file(id, hot)
  if res[5] > 0 then
    local dev = redis.call("HGET", nk, "dev") or ""
    for d in string.gmatch(res[6], "%d+") do dev = set_dev(dev, tonumber(d), "0") end
    redis.call("HSET", nk, "dev", dev)
  end
  for i = 7, #res, 2 do
    if redis.call("HINCRBY", nk, "ux:" .. res[i], 0 - res[i + 1]) == 0 then
      redis.call("HDEL", nk, "ux:" .. res[i])
    end
  end
end
redis.call("ZREM", njkey(id), job)
redis.call("DEL", rkey(job))
redis.call("HINCRBY", STATS, "released", 1)
return res
