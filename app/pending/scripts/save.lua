-- Create or replace a pending registration, its token lookup and its index entry.
-- KEYS: pending hash, index zset, new token key
-- ARGV: ttl_ms, expires_at, address_id, token key prefix, field, value, field, value, ...
local old = redis.call('HGET', KEYS[1], 'token_digest')
if old and (ARGV[4] .. old) ~= KEYS[3] then
  redis.call('DEL', ARGV[4] .. old)
end
redis.call('DEL', KEYS[1])
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
