-- ARGV: cpu, ram, gpu, kind, n_ext, (name, amount)*, n_sel, (key, n_values, values...)*
-- Returns {id, score as "%.17g"}... for every fitting node, in registration order.
local rc, rr, rg, kind = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local pos = 5
local hmget = {"ac", "ar", "ag", "uc", "ur", "ug", "drain"}
local ext, n_ext = {}, tonumber(ARGV[pos]); pos = pos + 1
for _ = 1, n_ext do
  table.insert(ext, {ARGV[pos], tonumber(ARGV[pos + 1])})
  table.insert(hmget, "ax:" .. ARGV[pos]); table.insert(hmget, "ux:" .. ARGV[pos])
  pos = pos + 2
end
local sel, n_sel = {}, tonumber(ARGV[pos]); pos = pos + 1
for _ = 1, n_sel do
  local key, n = ARGV[pos], tonumber(ARGV[pos + 1])
  local values = {}
  for i = 1, n do values[ARGV[pos + 1 + i]] = true end
  table.insert(sel, values)
  table.insert(hmget, "l:" .. key)
  pos = pos + 2 + n
end
local label0 = 8 + 2 * #ext
local out = {}
for _, id in ipairs(redis.call("ZRANGE", NODES, 0, -1)) do
  local v = redis.call("HMGET", nkey(id), unpack(hmget))
  local ac, ar, ag = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
  local uc, ur, ug = tonumber(v[4]), tonumber(v[5]), tonumber(v[6])
  local ok = v[7] ~= "1" and rc <= ac - uc and rr <= ar - ur and rg <= ag - ug
  if ok then
    for i, e in ipairs(ext) do
      if e[2] > (tonumber(v[6 + 2 * i]) or 0) - (tonumber(v[7 + 2 * i]) or 0) then ok = false end
    end
  end
  if ok then
    for i, values in ipairs(sel) do
      if not (v[label0 + i - 1] and values[v[label0 + i - 1]]) then ok = false end
    end
  end
  if ok then
    table.insert(out, id)
    table.insert(out, string.format("%.17g", score(kind, ac, ar, uc, ur, rc, rr)))
  end
end
return out
