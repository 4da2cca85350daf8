--! include _count
--! include _record
--! include _upgrade
-- Recovery: move a registration held in memory into Redis, unless Redis has one updated later;
-- keep the larger per-address attempt counter.
-- KEYS: pending hash, count hash, attempts counter
-- ARGV: address id, ttl_ms, expires_at (whole seconds), updated_at (ms), attempts,
--       attempts_ttl, the record's fields as a JSON list [field, value, ...]
local attempts = tonumber(ARGV[5])
if attempts > tonumber(redis.call('GET', KEYS[3]) or '0') then
  redis.call('SET', KEYS[3], attempts, 'EX', ARGV[6])
end
upgrade(KEYS[1], KEYS[2], ARGV[1])
local stored = redis.call('HMGET', KEYS[1], 'u', 'i')
local current = stored[1] or stored[2]
if current and tonumber(current) >= tonumber(ARGV[4]) then return 0 end
write_record(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], cjson.decode(ARGV[7]))
return 1
