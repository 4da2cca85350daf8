-- Included by the scripts that send email: take one email from an address's allowance
-- (a cooldown and an hourly cap). Returns 0 when allowed (and takes it), else seconds to wait.
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
