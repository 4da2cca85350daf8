-- Resend: new code and token, old ones dead, TTL reset; the per-address counter is untouched.
-- KEYS: pending hash, index zset, new token key, op result key
-- ARGV: ttl_ms, expires_at, address_id, token key prefix, code_digest, token_digest, now
local prev = redis.call('GET', KEYS[4])
if prev then return tonumber(prev) end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[4], '0', 'EX', 120)
  return 0
end
local old = redis.call('HGET', KEYS[1], 'token_digest')
if old then redis.call('DEL', ARGV[4] .. old) end
redis.call('HSET', KEYS[1], 'code_digest', ARGV[5], 'token_digest', ARGV[6],
           'code_issued_at', ARGV[7], 'updated_at', ARGV[7], 'code_attempts', '0',
           'expires_at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('SET', KEYS[4], '1', 'EX', 120)
return 1
