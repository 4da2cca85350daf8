--! include _allowance
-- Take one email from an address's allowance (a signup of an address that has an account:
-- nothing is stored, a "you already have an account" email goes out instead of a code).
-- When allowed, the address's stand-in code count starts again (check_code.lua), as a new
-- code's would, so the numbers a signing-up browser reads do not tell the two apart.
-- KEYS: cooldown key, hourly counter key, op result key, per-code attempts counter of an
--       address with no pending record
-- ARGV: cooldown seconds, per-hour cap
-- Returns 0 when allowed, else the seconds to wait; the same op sent again gets the same answer.
local prev = redis.call('GET', KEYS[3])
if prev then return tonumber(prev) end
local wait = take_allowance(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait == 0 then redis.call('DEL', KEYS[4]) end
redis.call('SET', KEYS[3], wait, 'EX', 120)
return wait
