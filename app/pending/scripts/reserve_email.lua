-- Take one email from an address's allowance: a cooldown and an hourly cap.
-- KEYS: cooldown key, hourly counter key, op result key
-- ARGV: cooldown seconds, per-hour cap
-- Returns 0 when allowed, else the seconds to wait; the same op sent again gets the same answer.
local prev = redis.call('GET', KEYS[3])
if prev then return tonumber(prev) end
local cooldown = tonumber(ARGV[1])
if cooldown > 0 then
  local wait = redis.call('PTTL', KEYS[1])
  if wait > 0 then
    wait = math.ceil(wait / 1000)
    redis.call('SET', KEYS[3], wait, 'EX', 120)
    return wait
  end
end
local sent = tonumber(redis.call('GET', KEYS[2]) or '0')
if sent >= tonumber(ARGV[2]) then
  local wait = redis.call('TTL', KEYS[2])
  if wait < 1 then wait = 1 end
  redis.call('SET', KEYS[3], wait, 'EX', 120)
  return wait
end
if cooldown > 0 then redis.call('SET', KEYS[1], '1', 'EX', cooldown) end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], 3600) end
redis.call('SET', KEYS[3], 0, 'EX', 120)
return 0
