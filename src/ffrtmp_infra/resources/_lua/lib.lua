-- Shared helpers, prepended to every script. KEYS[1] is the "{prefix}" base, so every
-- key the scripts touch shares one hash slot.
local base = KEYS[1]
local NODES = base .. ":nodes"   -- zset: node id -> registration seq
local STATS = base .. ":stats"   -- hash: reserved/released/rejected/evicted counters
-- hash: node id -> "ac ar ag uc ur ug drain seq" (allocatable, used, draining flag,
-- registration seq). One HGETALL gives reserve_any everything it filters and scores on.
local HOT = base .. ":hot"
local function nkey(id) return base .. ":n:" .. id end    -- hash: one node
local function njkey(id) return base .. ":nj:" .. id end  -- zset: job id -> job seq
local function rkey(id) return base .. ":r:" .. id end    -- hash: one reservation

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

-- A reservation as a flat array: job, node, cpu, ram, gpu, devices, ext name/amount pairs.
local function reservation(job)
  local h = redis.call("HGETALL", rkey(job))
  if #h == 0 then return nil end
  local out = {job, "", 0, 0, 0, ""}
  for i = 1, #h, 2 do
    local f, v = h[i], h[i + 1]
    if f == "node" then out[2] = v
    elseif f == "c" then out[3] = tonumber(v)
    elseif f == "r" then out[4] = tonumber(v)
    elseif f == "g" then out[5] = tonumber(v)
    elseif f == "dev" then out[6] = v
    elseif string.sub(f, 1, 2) == "x:" then
      table.insert(out, string.sub(f, 3)); table.insert(out, tonumber(v))
    end
  end
  return out
end

local HOT_PATTERN = "^(%d+) (%d+) (%d+) (%-?%d+) (%-?%d+) (%-?%d+) (%d) (%d+)$"

-- {ac, ar, ag, uc, ur, ug, drain, seq} as numbers, from a hot string.
local function parse_hot(s)
  local ac, ar, ag, uc, ur, ug, dr, seq = string.match(s, HOT_PATTERN)
  return {tonumber(ac), tonumber(ar), tonumber(ag), tonumber(uc), tonumber(ur), tonumber(ug),
          tonumber(dr), tonumber(seq)}
end

local function get_hot(id)
  local s = redis.call("HGET", HOT, id)
  if not s then return nil end
  return parse_hot(s)
end

local function put_hot(id, h)
  redis.call("HSET", HOT, id, string.format("%d %d %d %d %d %d %d %d",
    h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]))
end

-- A node as {id, hgetall, reservation count, hot string}.
local function node_view(id)
  return {id, redis.call("HGETALL", nkey(id)), redis.call("ZCARD", njkey(id)),
          redis.call("HGET", HOT, id)}
end
