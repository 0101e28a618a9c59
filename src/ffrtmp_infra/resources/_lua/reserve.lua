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

-- Extended amounts still free on a node: {free_1, free_2, ...} in ext order.
local ext_fields = {}
for _, e in ipairs(ext) do
  table.insert(ext_fields, "ax:" .. e[1]); table.insert(ext_fields, "ux:" .. e[1])
end
local function ext_free(id)
  local v = redis.call("HMGET", nkey(id), unpack(ext_fields))
  local free = {}
  for i = 1, #ext do
    free[i] = (tonumber(v[2 * i - 1]) or 0) - (tonumber(v[2 * i]) or 0)
  end
  return free
end

local function take(id, hot)
  local nk = nkey(id)
  hot[4], hot[5], hot[6] = hot[4] + rc, hot[5] + rr, hot[6] + rg
  put_hot(id, hot)
  local devs = {}
  if rg > 0 then
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

if want ~= "" then
  local hot = get_hot(want)
  if not hot then return {"unknown"} end
  if hot[7] == 1 then
    redis.call("HINCRBY", STATS, "rejected", 1)
    return {"draining"}
  end
  local short = {"short"}
  local checks = {{"cpu", rc, hot[1] - hot[4]}, {"ram", rr, hot[2] - hot[5]},
                  {"gpu", rg, hot[3] - hot[6]}}
  if #ext > 0 then
    local free = ext_free(want)
    for i, e in ipairs(ext) do table.insert(checks, {e[1], e[2], free[i]}) end
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
  return take(want, hot)
end

local sel_keys, sel_values = {}, {}
local n_sel = tonumber(ARGV[pos]); pos = pos + 1
for _ = 1, n_sel do
  local key, n = ARGV[pos], tonumber(ARGV[pos + 1])
  local values = {}
  for i = 1, n do values[ARGV[pos + 1 + i]] = true end
  table.insert(sel_keys, "l:" .. key); table.insert(sel_values, values)
  pos = pos + 2 + n
end
local excluded = {}
local n_excl = tonumber(ARGV[pos]); pos = pos + 1
for i = 1, n_excl do excluded[ARGV[pos + i - 1]] = true end

local best, best_score, best_seq = nil, -1, 0
local match, num = string.match, tonumber
local all = redis.call("HGETALL", HOT)
for k = 1, #all, 2 do
  -- Unpacked into locals (no table per node): this loop is the script's whole cost.
  local ac, ar, ag, uc, ur, ug, dr, seq = match(all[k + 1], HOT_PATTERN)
  ac, ar, uc, ur = num(ac), num(ar), num(uc), num(ur)
  if dr == "0" and rc <= ac - uc and rr <= ar - ur and rg <= num(ag) - num(ug) then
    local id = all[k]
    seq = num(seq)
    local s = score(kind, ac, ar, uc, ur, rc, rr)
    if (s > best_score or (s == best_score and seq < best_seq)) and not excluded[id] then
      local ok = true
      if #ext > 0 then
        local free = ext_free(id)
        for i, e in ipairs(ext) do
          if e[2] > free[i] then ok = false end
        end
      end
      if ok and #sel_keys > 0 then
        local labels = redis.call("HMGET", nkey(id), unpack(sel_keys))
        for i, values in ipairs(sel_values) do
          if not (labels[i] and values[labels[i]]) then ok = false end
        end
      end
      if ok then best, best_score, best_seq = id, s, seq end
    end
  end
end
if not best then
  redis.call("HINCRBY", STATS, "rejected", 1)
  return {"nofit", #all / 2}
end
return take(best, get_hot(best))
