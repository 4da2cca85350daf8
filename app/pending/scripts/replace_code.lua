--! include _allowance
-- Resend: new code and token, old ones dead, TTL reset; the per-address counter is untouched.
-- With take_email, the address's email allowance is taken first (whether or not a registration
-- exists, so the answer never tells), all in one step.
-- KEYS: pending hash, index zset, new token key, op result key, cooldown key, hourly key
-- ARGV: ttl_ms, expires_at, address_id, token key prefix, code_digest, token_digest, now,
--       take_email (0/1), cooldown, per_hour
-- Returns JSON {status = updated|missing|wait, retry_after, locale}.
local prev = redis.call('GET', KEYS[4])
if prev then return prev end
local function answer(result)
  local encoded = cjson.encode(result)
  redis.call('SET', KEYS[4], encoded, 'EX', 120)
  return encoded
end
if ARGV[8] == '1' then
  local wait = take_allowance(KEYS[5], KEYS[6], tonumber(ARGV[9]), tonumber(ARGV[10]))
  if wait > 0 then return answer({status = 'wait', retry_after = wait}) end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return answer({status = 'missing'}) end
local old = redis.call('HGET', KEYS[1], 'token_digest')
if old then redis.call('DEL', ARGV[4] .. old) end
redis.call('HSET', KEYS[1], 'code_digest', ARGV[5], 'token_digest', ARGV[6],
           'code_issued_at', ARGV[7], 'updated_at', ARGV[7], 'code_attempts', '0',
           'expires_at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return answer({status = 'updated', locale = redis.call('HGET', KEYS[1], 'locale')})
