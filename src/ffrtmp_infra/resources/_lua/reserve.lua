-- ARGV: job, node ("" = any), owner, lease ttl ms (0 = no lease), cpu, ram, gpu, kind,
--       n_ext, (name, amount)*, n_sel, (key, n_values, values...)*, n_excl, ids...
-- Returns {"ok"|"same", reservation} or {"dup", reservation} or {"unknown"} or
-- {"draining"} or {"short", (name, need, have)*} or {"nofit", n_nodes}.
local job, want, owner, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local rc, rr, rg, kind = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local pos = 9
local ext, n_ext = {}, tonumber(ARGV[pos]); pos = pos + 1
for _ = 1, n_ext do
  table.insert(ext, {ARGV[pos], tonumber(ARGV[pos + 1])}); pos = pos + 2
end

local existing = reservation(job)
if existing then
  local same = (want == "" or existing[2] == want) and existing[3] == rc
    and existing[4] == rr and existing[5] == rg and (#existing - EXT0 + 1) == 2 * #ext
  if same then
    local have = {}
    for i = EXT0, #existing, 2 do have[existing[i]] = existing[i + 1] end
    for _, e in ipairs(ext) do
      if have[e[1]] ~= e[2] then same = false end
    end
  end
  if same then
    if ttl > 0 then set_lease(existing, owner, ttl) end
    return {"same", existing}
  end
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
  unfile(id, hot)
  hot[4], hot[5], hot[6] = hot[4] + rc, hot[5] + rr, hot[6] + rg
  put_hot(id, hot)
  file(id, hot)
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
  local res = reservation(job)
  if ttl > 0 then set_lease(res, owner, ttl) end
  return {"ok", res}
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
  table.insert(sel_keys, key); table.insert(sel_values, values)
  pos = pos + 2 + n
end
local excluded = {}
local n_excl = tonumber(ARGV[pos]); pos = pos + 1
for i = 1, n_excl do excluded[ARGV[pos + i - 1]] = true end

-- The search of _index.Shape.best over the Redis index: the same buckets, the same order,
-- the same early stop, so the same node wins (highest score, then lowest seq).
local BIG = math.huge

local function usable(id)
  if excluded[id] then return false end
  if #ext > 0 then
    local free = ext_free(id)
    for i, e in ipairs(ext) do
      if e[2] > free[i] then return false end
    end
  end
  return true
end

local function seq_of(entry) return tonumber(string.sub(entry, 1, 10)) end

-- Integer floor(a / b) for 0 <= a < 2^53, b > 0 (a double division can round up).
local function fdiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 end
  return q
end

-- Every entry of bucket b with used RAM <= max_r, best first (score down, seq up): the
-- rare path, when the bucket's first choice is excluded or lacks an extended resource.
local function ordered(b, ac, ar, uc, max_r)
  local raw = redis.call("ZRANGEBYSCORE", b, "-inf", max_r, "WITHSCORES")
  local out = {}
  for i = 1, #raw, 2 do
    table.insert(out, {raw[i], score(kind, ac, ar, uc, tonumber(raw[i + 1]), rc, rr),
                       seq_of(raw[i])})
  end
  table.sort(out, function(x, y)
    if x[2] ~= y[2] then return x[2] > y[2] end
    return x[3] < y[3]
  end)
  return out
end

local best, best_score, best_seq = nil, -1, BIG

local function search(s, ac, ar, ag)
  local max_c, max_r, max_g = ac - rc, ar - rr, ag - rg
  if max_c < 0 or max_r < 0 or max_g < 0 then return end
  local kk = keys_key(s)
  local keys
  if kind == "binpack" then
    keys = redis.call("ZREVRANGEBYSCORE", kk, max_c, "-inf", "WITHSCORES")
  else
    keys = redis.call("ZRANGEBYSCORE", kk, "-inf", max_c, "WITHSCORES")
  end
  local ac1, ar1 = ac, ar
  if ac1 == 0 then ac1 = 1 end
  if ar1 == 0 then ar1 = 1 end
  local den = ac1 * ar1
  local bound_r = 0
  if kind == "binpack" then bound_r = max_r end
  for k = 1, #keys, 2 do
    local ug, uc = tonumber(string.sub(keys[k], 1, 10)), tonumber(keys[k + 1])
    if ug <= max_g then
      local b = bucket_key(s, uc, ug)
      local entry, es
      if kind ~= "balanced" then
        -- no node of this bucket, or of any later one, can do better
        if score(kind, ac, ar, uc, bound_r, rc, rr) < best_score then return end
        local ur
        if kind == "spread" then
          local r = redis.call("ZRANGE", b, 0, 0, "WITHSCORES")
          if tonumber(r[2]) <= max_r then entry, ur = r[1], tonumber(r[2]) end
        else
          local r = redis.call("ZREVRANGEBYSCORE", b, max_r, "-inf", "WITHSCORES", "LIMIT", 0, 1)
          if #r > 0 then
            ur = tonumber(r[2])
            entry = redis.call("ZRANGEBYSCORE", b, ur, ur, "LIMIT", 0, 1)[1]
          end
        end
        if entry then es = score(kind, ac, ar, uc, ur, rc, rr) end
      else
        -- balanced: the best entry has (ur + rr) * ac nearest target = (uc + rc) * ar
        local target = (uc + rc) * ar1
        local split = fdiv(target, ac1) - rr
        local below, bur, above, aur
        if split >= 0 then
          local lim = split
          if max_r < lim then lim = max_r end
          local r = redis.call("ZREVRANGEBYSCORE", b, lim, "-inf", "WITHSCORES", "LIMIT", 0, 1)
          if #r > 0 then below, bur = r[1], tonumber(r[2]) end
        end
        if split < max_r then
          local r = redis.call("ZRANGEBYSCORE", b, "(" .. split, max_r, "WITHSCORES", "LIMIT", 0, 1)
          if #r > 0 then above, aur = r[1], tonumber(r[2]) end
        end
        if below or above then
          local gb, ga = BIG, BIG
          if below then gb = target - (bur + rr) * ac1 end
          if above then ga = (aur + rr) * ac1 - target end
          local gap = gb
          if ga < gb then gap = ga end
          es = (den - gap) / den
          if es >= best_score then
            if gb <= ga then
              -- the lowest seq among the entries with that RAM use
              entry = redis.call("ZRANGEBYSCORE", b, bur, bur, "LIMIT", 0, 1)[1]
              if gb == ga and seq_of(above) < seq_of(entry) then entry = above end
            else
              entry = above
            end
          end
        end
      end
      if entry then
        local seq = seq_of(entry)
        if es > best_score or (es == best_score and seq < best_seq) then
          local id = string.sub(entry, 11)
          if usable(id) then
            best, best_score, best_seq = id, es, seq
          else
            for _, e in ipairs(ordered(b, ac, ar, uc, max_r)) do
              if e[2] < best_score or (e[2] == best_score and e[3] > best_seq) then break end
              local other = string.sub(e[1], 11)
              if usable(other) then
                best, best_score, best_seq = other, e[2], e[3]
                break
              end
            end
          end
        end
      end
    end
  end
end

local shapes = redis.call("HGETALL", SHAPES)
for i = 1, #shapes, 2 do
  local sh = cjson.decode(shapes[i + 1])
  local ok = true
  for j, key in ipairs(sel_keys) do
    local v = sh.l[key]
    if not (v and sel_values[j][v]) then ok = false end
  end
  for _, e in ipairs(ext) do
    if e[2] > (sh.x[e[1]] or 0) then ok = false end
  end
  if ok then search(shapes[i], sh.ac, sh.ar, sh.ag) end
end
if not best then
  redis.call("HINCRBY", STATS, "rejected", 1)
  return {"nofit", redis.call("HLEN", HOT)}
end
return take(best, get_hot(best))
