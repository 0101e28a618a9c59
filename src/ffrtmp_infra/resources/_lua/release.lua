-- ARGV: job. Returns the reservation it removed, or {} when the job held nothing.
local res = reservation(ARGV[1])
if not res then return {} end
drop(res, "released")
return res
