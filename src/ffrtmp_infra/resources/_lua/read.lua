-- ARGV: what ("node" id | "reservation" id | "snapshot" | "counters").
local what, id = ARGV[1], ARGV[2]
if what == "node" then
  if redis.call("HEXISTS", HOT, id) == 0 then return {} end
  return node_view(id)
end
if what == "reservation" then return reservation(id) or {} end
if what == "counters" then return redis.call("HGETALL", STATS) end
local nodes, reservations = {}, {}
for _, node in ipairs(redis.call("ZRANGE", NODES, 0, -1)) do
  table.insert(nodes, node_view(node))
  for _, job in ipairs(redis.call("ZRANGE", njkey(node), 0, -1)) do
    local res = reservation(job)
    if res then table.insert(reservations, res) end
  end
end
return {nodes, reservations}
