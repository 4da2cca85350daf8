-- Take one email from an address's allowance (a signup of an address that has an account:
-- nothing is stored, a "you already have an account" email goes out instead of a code).
-- When allowed, the address's stand-in code count starts again (check_code.lua), as a new
-- code's would, so the numbers a signing-up browser reads do not tell the two apart.
-- KEYS (one hash tag): cooldown key, hourly counter key, op result key, per-code attempts counter of an
--       address with no pending record
-- ARGV: cooldown seconds, per-hour cap
-- Returns 0 when allowed, else the seconds to wait; the same op sent again gets the same answer.

-- Take one email from the address's allowance: as in save.lua (the same block).
local function take_allowance(cooldown_key, hour_key, cooldown, per_hour)
  if cooldown > 0 then
    local wait = redis.call('PTTL', cooldown_key)
    if wait > 0 then return math.ceil(wait / 1000) end
  end
  local sent = tonumber(redis.call('GET', hour_key) or '0')
  if sent >= per_hour then
    local wait = redis.call('TTL', hour_key)
    if wait < 1 then wait = 1 end
    return wait
  end
  if cooldown > 0 then redis.call('SET', cooldown_key, '1', 'EX', cooldown) end
  if redis.call('INCR', hour_key) == 1 then redis.call('EXPIRE', hour_key, 3600) end
  return 0
end

local prev = redis.call('GET', KEYS[3])
if prev then return tonumber(prev) end
local wait = take_allowance(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait == 0 then redis.call('DEL', KEYS[4]) end
redis.call('SET', KEYS[3], wait, 'EX', 120)
return wait
