--! include _write_record
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
write_record(8)
return 1
