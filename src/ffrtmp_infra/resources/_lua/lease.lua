-- ARGV: what ("job" id | "owner" owner | "expire"), ttl in ms (0: each lease's own).
-- Returns for "job" the reservation or {} (it holds nothing); for "owner" the job ids
-- renewed; for "expire" the reservations that expired now (the sweep above).
local what, id, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
if what == "expire" then return expired end

local function renew(res)
  local t = ttl
  if t == 0 then t = res[8] end
  if t == 0 then return res end
  return set_lease(res, res[7], t)
end

if what == "job" then
  local res = reservation(id)
  if not res then return {} end
  return renew(res)
end
local jobs = redis.call("SMEMBERS", okey(id))
for _, job in ipairs(jobs) do
  local res = reservation(job)
  if res then renew(res) end
end
return jobs
