-- ARGV: cpu, ram, gpu, kind, n_ext, (name, amount)*, n_sel, (key, n_values, values...)*
-- Returns {id, score as "%.17g", seq}... for every fitting node (any order).
local rc, rr, rg, kind = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local pos = 5
local ext, extra = {}, {}
local n_ext = tonumber(ARGV[pos]); pos = pos + 1
for _ = 1, n_ext do
  table.insert(ext, {ARGV[pos], tonumber(ARGV[pos + 1])})
  table.insert(extra, "ax:" .. ARGV[pos]); table.insert(extra, "ux:" .. ARGV[pos])
  pos = pos + 2
end
local sel = {}
local n_sel = tonumber(ARGV[pos]); pos = pos + 1
for _ = 1, n_sel do
  local key, n = ARGV[pos], tonumber(ARGV[pos + 1])
  local values = {}
  for i = 1, n do values[ARGV[pos + 1 + i]] = true end
  table.insert(sel, values)
  table.insert(extra, "l:" .. key)
  pos = pos + 2 + n
end
local label0 = 1 + 2 * #ext
local out = {}
local all = redis.call("HGETALL", HOT)
local match, num = string.match, tonumber
for k = 1, #all, 2 do
  local ac, ar, ag, uc, ur, ug, dr, seq = match(all[k + 1], HOT_PATTERN)  -- shape unused
  ac, ar, uc, ur = num(ac), num(ar), num(uc), num(ur)
  if dr == "0" and rc <= ac - uc and rr <= ar - ur and rg <= num(ag) - num(ug) then
    local id = all[k]
    local ok = true
    if #extra > 0 then
      local v = redis.call("HMGET", nkey(id), unpack(extra))
      for i, e in ipairs(ext) do
        if e[2] > (num(v[2 * i - 1]) or 0) - (num(v[2 * i]) or 0) then ok = false end
      end
      for i, values in ipairs(sel) do
        if not (v[label0 + i - 1] and values[v[label0 + i - 1]]) then ok = false end
      end
    end
    if ok then
      table.insert(out, id)
      table.insert(out, string.format("%.17g", score(kind, ac, ar, uc, ur, rc, rr)))
      table.insert(out, num(seq))
    end
  end
end
return out
