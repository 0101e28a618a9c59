-- ARGV: job, node ("" = any), cpu, ram, gpu, kind, n_ext, (name, amount)*,
--       n_sel, (key, n_values, values...)*, n_excl, ids...
-- Returns {"ok"|"same", reservation} or {"dup", reservation} or {"unknown"} or
-- {"draining"} or {"short", (name, need, have)*} or {"nofit", n_nodes}.
local job, want = ARGV[1], ARGV[2]
local rc, rr, rg, kind = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local pos = 7
local ext, n_ext = {}, tonumber(ARGV[pos]); pos = pos + 1
for _ = 1, n_ext do
  table.insert(ext, {ARGV[pos], tonumber(ARGV[pos + 1])}); pos = pos + 2
end

local existing = reservation(job)
if existing then
  local same = (want == "" or existing[2] == want) and existing[3] == rc
    and existing[4] == rr and existing[5] == rg and (#existing - 6) == 2 * #ext
  if same then
    local have = {}
    for i = 7, #existing, 2 do have[existing[i]] = existing[i + 1] end
    for _, e in ipairs(ext) do
      if have[e[1]] ~= e[2] then same = false end
    end
  end
  if same then return {"same", existing} end
  return {"dup", existing}
end

local function take(id)
  local nk = nkey(id)
  redis.call("HINCRBY", nk, "uc", rc)
  redis.call("HINCRBY", nk, "ur", rr)
  local devs = {}
  if rg > 0 then
    redis.call("HINCRBY", nk, "ug", rg)
    local dev = redis.call("HGET", nk, "dev") or ""
    local i = 0
    while #devs < rg do
      if string.sub(dev, i + 1, i + 1) ~= "1" then
        table.insert(devs, i); dev = set_dev(dev, i, "1")
      end
      i = i + 1
    end
    redis.call("HSET", nk, "dev", dev)
  end
  local seq = redis.call("INCR", base .. ":jseq")
  local fields = {"node", id, "c", rc, "r", rr, "g", rg, "dev", table.concat(devs, ",")}
  for _, e in ipairs(ext) do
    redis.call("HINCRBY", nk, "ux:" .. e[1], e[2])
    table.insert(fields, "x:" .. e[1]); table.insert(fields, e[2])
  end
  redis.call("HSET", rkey(job), unpack(fields))
  redis.call("ZADD", njkey(id), seq, job)
  redis.call("HINCRBY", STATS, "reserved", 1)
  return {"ok", reservation(job)}
end

local hmget = {"ac", "ar", "ag", "uc", "ur", "ug", "drain"}
for _, e in ipairs(ext) do
  table.insert(hmget, "ax:" .. e[1]); table.insert(hmget, "ux:" .. e[1])
end

if want ~= "" then
  local v = redis.call("HMGET", nkey(want), unpack(hmget))
  if not v[1] then return {"unknown"} end
  if v[7] == "1" then
    redis.call("HINCRBY", STATS, "rejected", 1)
    return {"draining"}
  end
  local short = {"short"}
  local checks = {{"cpu", rc, v[1] - v[4]}, {"ram", rr, v[2] - v[5]}, {"gpu", rg, v[3] - v[6]}}
  for i, e in ipairs(ext) do
    table.insert(checks, {e[1], e[2], (tonumber(v[6 + 2 * i]) or 0) - (tonumber(v[7 + 2 * i]) or 0)})
  end
  for _, c in ipairs(checks) do
    if c[2] > c[3] then
      table.insert(short, c[1]); table.insert(short, c[2]); table.insert(short, math.max(0, c[3]))
    end
  end
  if #short > 1 then
    redis.call("HINCRBY", STATS, "rejected", 1)
    return short
  end
  return take(want)
end

local sel = {}
local n_sel = tonumber(ARGV[pos]); pos = pos + 1
for _ = 1, n_sel do
  local key, n = ARGV[pos], tonumber(ARGV[pos + 1])
  local values = {}
  for i = 1, n do values[ARGV[pos + 1 + i]] = true end
  table.insert(sel, values)
  table.insert(hmget, "l:" .. key)
  pos = pos + 2 + n
end
local excluded = {}
local n_excl = tonumber(ARGV[pos]); pos = pos + 1
for i = 1, n_excl do excluded[ARGV[pos + i - 1]] = true end

local label0 = 8 + 2 * #ext
local best, best_score = nil, -1
local ids = redis.call("ZRANGE", NODES, 0, -1)
for _, id in ipairs(ids) do
  if not excluded[id] then
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
      local s = score(kind, ac, ar, uc, ur, rc, rr)
      if s > best_score then best, best_score = id, s end
    end
  end
end
if not best then
  redis.call("HINCRBY", STATS, "rejected", 1)
  return {"nofit", #ids}
end
return take(best)
