-- Shared helpers, prepended to every script. KEYS[1] is the "{prefix}" base, so every
-- key the scripts touch shares one hash slot.
local base = KEYS[1]
local NODES = base .. ":nodes"   -- zset: node id -> registration seq
local STATS = base .. ":stats"   -- hash: reserved/released/rejected/evicted counters
-- hash: node id -> "ac ar ag uc ur ug drain seq shape" (allocatable, used, draining
-- flag, registration seq, shape id): everything reserve and release read and write.
local HOT = base .. ":hot"
-- The placement index (the memory backend's, in Redis keys). Nodes with the same
-- allocatable, extended resources and labels form a shape; a shape's non-draining nodes
-- sit in buckets by used (cpu, gpu), each bucket a zset of its nodes scored by used RAM.
local SHAPES = base .. ":shapes"      -- hash: shape id -> cjson {ac, ar, ag, x, l, k}
local SHAPE_IDS = base .. ":shapeids" -- hash: canonical shape (k) -> shape id
local SHAPE_N = base .. ":shapen"     -- hash: shape id -> number of nodes
-- zset per shape: its non-empty buckets, scored by used cpu, member = used gpu "%010d"
-- then ":" and used cpu (equal scores sort by member, so the zset is in (cpu, gpu) order).
local function keys_key(s) return base .. ":k:" .. s end
local function keys_member(uc, ug) return string.format("%010d:%d", ug, uc) end
-- zset per bucket: member = seq "%010d" .. node id, score = used RAM (ties: lowest seq).
local function bucket_key(s, uc, ug) return base .. ":b:" .. s .. ":" .. uc .. ":" .. ug end
local function nkey(id) return base .. ":n:" .. id end    -- hash: one node
local function njkey(id) return base .. ":nj:" .. id end  -- zset: job id -> job seq
local function rkey(id) return base .. ":r:" .. id end    -- hash: one reservation
-- Leases: a zset of leased jobs by deadline (ms of Redis server TIME) and a set of job
-- ids per owner. The last ARGV of every script is a clock offset in ms (0; tests move
-- the ledger's time forward with it).
local LEASES = base .. ":leases"
local function okey(owner) return base .. ":o:" .. owner end
local SKEW = tonumber(ARGV[#ARGV])

-- The built-in scores, as in _scoring.builtin_score: one division of exact integers.
local function score(kind, ac, ar, uc, ur, rc, rr)
  if ac == 0 then ac = 1 end
  if ar == 0 then ar = 1 end
  local den = ac * ar
  if kind == "binpack" then return ((uc + rc) * ar + (ur + rr) * ac) / den end
  if kind == "spread" then return (2 * den - (uc + rc) * ar - (ur + rr) * ac) / den end
  local d = (uc + rc) * ar - (ur + rr) * ac
  if d < 0 then d = -d end
  return (den - d) / den
end

-- Flip device index i (0-based) of a '0'/'1' string to ch.
local function set_dev(dev, i, ch)
  if #dev <= i then dev = dev .. string.rep("0", i + 1 - #dev) end
  return string.sub(dev, 1, i) .. ch .. string.sub(dev, i + 2)
end

-- A reservation as a flat array: job, node, cpu, ram, gpu, devices, owner ("" for none),
-- lease ttl in ms (0 for none), then ext name/amount pairs (from index EXT0).
local EXT0 = 9
local function reservation(job)
  local h = redis.call("HGETALL", rkey(job))
  if #h == 0 then return nil end
  local out = {job, "", 0, 0, 0, "", "", 0}
  for i = 1, #h, 2 do
    local f, v = h[i], h[i + 1]
    if f == "node" then out[2] = v
    elseif f == "c" then out[3] = tonumber(v)
    elseif f == "r" then out[4] = tonumber(v)
    elseif f == "g" then out[5] = tonumber(v)
    elseif f == "dev" then out[6] = v
    elseif f == "o" then out[7] = v
    elseif f == "t" then out[8] = tonumber(v)
    elseif string.sub(f, 1, 2) == "x:" then
      table.insert(out, string.sub(f, 3)); table.insert(out, tonumber(v))
    end
  end
  return out
end

local HOT_PATTERN = "^(%d+) (%d+) (%d+) (%-?%d+) (%-?%d+) (%-?%d+) (%d) (%d+) (%d+)$"

-- {ac, ar, ag, uc, ur, ug, drain, seq, shape} as numbers, from a hot string.
local function parse_hot(s)
  local ac, ar, ag, uc, ur, ug, dr, seq, sh = string.match(s, HOT_PATTERN)
  return {tonumber(ac), tonumber(ar), tonumber(ag), tonumber(uc), tonumber(ur), tonumber(ug),
          tonumber(dr), tonumber(seq), tonumber(sh)}
end

local function get_hot(id)
  local s = redis.call("HGET", HOT, id)
  if not s then return nil end
  return parse_hot(s)
end

local function put_hot(id, h)
  redis.call("HSET", HOT, id, string.format("%d %d %d %d %d %d %d %d %d",
    h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]))
end

-- Take the node (hot record h) out of its bucket, before h changes; file puts it back
-- after. A draining node is in no bucket.
local function unfile(id, h)
  if h[7] ~= 0 then return end
  local b = bucket_key(h[9], h[4], h[6])
  redis.call("ZREM", b, string.format("%010d", h[8]) .. id)
  if redis.call("EXISTS", b) == 0 then
    redis.call("ZREM", keys_key(h[9]), keys_member(h[4], h[6]))
  end
end

local function file(id, h)
  if h[7] ~= 0 then return end
  redis.call("ZADD", bucket_key(h[9], h[4], h[6]), h[5], string.format("%010d", h[8]) .. id)
  redis.call("ZADD", keys_key(h[9]), h[4], keys_member(h[4], h[6]))
end

-- One node fewer in shape s; the shape goes when it has none.
local function leave_shape(s)
  if redis.call("HINCRBY", SHAPE_N, s, -1) > 0 then return end
  local info = cjson.decode(redis.call("HGET", SHAPES, s))
  redis.call("HDEL", SHAPE_IDS, info.k)
  redis.call("HDEL", SHAPES, s)
  redis.call("HDEL", SHAPE_N, s)
end

-- A node as {id, hgetall, reservation count, hot string}.
local function node_view(id)
  return {id, redis.call("HGETALL", nkey(id)), redis.call("ZCARD", njkey(id)),
          redis.call("HGET", HOT, id)}
end

-- Remove reservation res (from reservation()) and give its resources back; counts it
-- under stat ("released" or "expired").
local function drop(res, stat)
  local job, id = res[1], res[2]
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
    for i = EXT0, #res, 2 do
      if redis.call("HINCRBY", nk, "ux:" .. res[i], 0 - res[i + 1]) == 0 then
        redis.call("HDEL", nk, "ux:" .. res[i])
      end
    end
  end
  if res[8] > 0 then
    redis.call("ZREM", LEASES, job)
    if res[7] ~= "" then redis.call("SREM", okey(res[7]), job) end
  end
  redis.call("ZREM", njkey(id), job)
  redis.call("DEL", rkey(job))
  redis.call("HINCRBY", STATS, stat, 1)
end

local function now_ms()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + SKEW
end

-- Give reservation res a lease of ttl ms owned by owner ("" for none), from now.
local function set_lease(res, owner, ttl)
  local job = res[1]
  if res[7] ~= "" and res[7] ~= owner then redis.call("SREM", okey(res[7]), job) end
  redis.call("ZADD", LEASES, now_ms() + ttl, job)
  if owner ~= "" then redis.call("SADD", okey(owner), job) end
  redis.call("HSET", rkey(job), "o", owner, "t", ttl)
  res[7], res[8] = owner, ttl
  return res
end

-- Expire every lease past its deadline, oldest first; returns what they held. Every
-- script runs it first, so an expired lease is never seen; without leases it costs one
-- ZRANGE of an empty key.
local function sweep()
  local first = redis.call("ZRANGE", LEASES, 0, 0, "WITHSCORES")
  if #first == 0 then return {} end
  local now = now_ms()
  if tonumber(first[2]) > now then return {} end
  local out = {}
  for _, job in ipairs(redis.call("ZRANGEBYSCORE", LEASES, "-inf", now)) do
    local res = reservation(job)
    if res then
      drop(res, "expired")
      table.insert(out, res)
    else
      redis.call("ZREM", LEASES, job)
    end
  end
  return out
end
local expired = sweep()
