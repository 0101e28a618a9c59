-- ARGV: node, "1" to drain or "0" to undrain. Returns {} if unknown, else the node view.
local id = ARGV[1]
local hot = get_hot(id)
if not hot then return {} end
unfile(id, hot)
hot[7] = tonumber(ARGV[2])
put_hot(id, hot)
file(id, hot)
return node_view(id)
