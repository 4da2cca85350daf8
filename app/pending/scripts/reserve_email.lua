--! include _allowance
-- Take one email from an address's allowance.
-- KEYS: cooldown key, hourly counter key, op result key
-- ARGV: cooldown seconds, per-hour cap
-- Returns 0 when allowed, else the seconds to wait; the same op sent again gets the same answer.
local prev = redis.call('GET', KEYS[3])
if prev then return tonumber(prev) end
local wait = take_allowance(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))
redis.call('SET', KEYS[3], wait, 'EX', 120)
return wait
