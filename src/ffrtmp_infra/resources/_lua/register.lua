-- ARGV: node, cc, cr, cg, ac, ar, ag, n_ext, (name, cap, alloc)*, n_labels, (key, value)*
-- Returns {node_view, misfit reservations...}.
local id = ARGV[1]
local nk = nkey(id)
local ac, ar, ag = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local fields = {"cc", ARGV[2], "cr", ARGV[3], "cg", ARGV[4]}
local pos = 8
local n_ext = tonumber(ARGV[pos]); pos = pos + 1
local alloc_ext = {}
for _ = 1, n_ext do
  local name = ARGV[pos]
  table.insert(fields, "cx:" .. name); table.insert(fields, ARGV[pos + 1])
  table.insert(fields, "ax:" .. name); table.insert(fields, ARGV[pos + 2])
  alloc_ext[name] = tonumber(ARGV[pos + 2])
  pos = pos + 3
end
local n_labels = tonumber(ARGV[pos]); pos = pos + 1
local labels, label_list = {}, {}
for _ = 1, n_labels do
  table.insert(fields, "l:" .. ARGV[pos]); table.insert(fields, ARGV[pos + 1])
  labels[ARGV[pos]] = ARGV[pos + 1]
  table.insert(label_list, ARGV[pos]); table.insert(label_list, ARGV[pos + 1])
  pos = pos + 2
end

-- The node's shape id, made on first use. Extended names and labels arrive sorted, so
-- the canonical string is the same for every node of the shape.
local function shape_of()
  local x, x_list = {}, {}
  for name, amount in pairs(alloc_ext) do
    if amount > 0 then x[name] = amount end
  end
  for i = 8 + 1, 8 + 3 * n_ext, 3 do
    if tonumber(ARGV[i + 2]) > 0 then
      table.insert(x_list, ARGV[i]); table.insert(x_list, ARGV[i + 2])
    end
  end
  local k = cjson.encode({ac, ar, ag, x_list, label_list})
  local s = redis.call("HGET", SHAPE_IDS, k)
  if not s then
    s = redis.call("INCR", base .. ":shapeseq")
    redis.call("HSET", SHAPE_IDS, k, s)
    redis.call("HSET", SHAPES, s, cjson.encode({ac = ac, ar = ar, ag = ag, x = x, l = labels, k = k}))
  end
  redis.call("HINCRBY", SHAPE_N, s, 1)
  return tonumber(s)
end

local misfits = {}
local hot = get_hot(id)
if hot then
  for _, f in ipairs(redis.call("HKEYS", nk)) do
    local p = string.sub(f, 1, 3)
    if p == "cx:" or p == "ax:" or string.sub(f, 1, 2) == "l:" then redis.call("HDEL", nk, f) end
  end
  redis.call("HSET", nk, unpack(fields))
  unfile(id, hot)
  leave_shape(hot[9])
  hot[1], hot[2], hot[3], hot[9] = ac, ar, ag, shape_of()
  put_hot(id, hot)
  file(id, hot)
  -- Reservations, oldest first, that the new allocatable no longer holds.
  local c, r, g, x = 0, 0, 0, {}
  for _, job in ipairs(redis.call("ZRANGE", njkey(id), 0, -1)) do
    local res = reservation(job)
    if res then
      c = c + res[3]; r = r + res[4]; g = g + res[5]
      local over = c > ac or r > ar or g > ag
      for i = EXT0, #res, 2 do
        x[res[i]] = (x[res[i]] or 0) + res[i + 1]
        if x[res[i]] > (alloc_ext[res[i]] or 0) then over = true end
      end
      for d in string.gmatch(res[6], "%d+") do
        if tonumber(d) >= ag then over = true end
      end
      if over then table.insert(misfits, res) end
    end
  end
else
  local seq = redis.call("INCR", base .. ":seq")
  redis.call("ZADD", NODES, seq, id)
  redis.call("HSET", nk, "dev", "", unpack(fields))
  local hot = {ac, ar, ag, 0, 0, 0, 0, seq, shape_of()}
  put_hot(id, hot)
  file(id, hot)
end
local out = {node_view(id)}
for _, res in ipairs(misfits) do table.insert(out, res) end
return out
