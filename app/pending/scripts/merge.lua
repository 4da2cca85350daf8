-- Recovery: move a registration held in memory into Redis, unless Redis has one updated later;
-- keep the larger per-address attempt counter.
-- KEYS: pending hash, index zset, token key, attempts counter
-- ARGV: ttl_ms, expires_at, address_id, token key prefix, updated_at, attempts, attempts_ttl,
--       field, value, field, value, ...
local attempts = tonumber(ARGV[6])
if attempts > tonumber(redis.call('GET', KEYS[4]) or '0') then
  redis.call('SET', KEYS[4], attempts, 'EX', ARGV[7])
end
local current = redis.call('HGET', KEYS[1], 'updated_at')
if current and tonumber(current) >= tonumber(ARGV[5]) then return 0 end
local old = redis.call('HGET', KEYS[1], 'token_digest')
if old and (ARGV[4] .. old) ~= KEYS[3] then redis.call('DEL', ARGV[4] .. old) end
redis.call('DEL', KEYS[1])
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
