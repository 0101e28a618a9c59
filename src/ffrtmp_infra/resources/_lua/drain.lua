-- ARGV: node, "1" to drain or "0" to undrain. Returns {} if unknown, else the node view.
local id = ARGV[1]
if redis.call("EXISTS", nkey(id)) == 0 then return {} end
redis.call("HSET", nkey(id), "drain", ARGV[2])
return node_view(id)
