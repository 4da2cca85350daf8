--! include _allowance
--! include _write_record
-- Create or replace a pending registration, its token lookup and its index entry, and (for a
-- signup) take an email from the address's allowance in the same step.
-- KEYS: pending hash, index zset, new token key, op result key, cooldown key, hourly key
-- ARGV: ttl_ms, expires_at, address_id, token key prefix, take_email (0/1), cooldown, per_hour,
--       field, value, field, value, ...
-- Returns 0, or the seconds to wait before an email may be sent (the record is stored anyway).
local prev = redis.call('GET', KEYS[4])
if prev then return tonumber(prev) end
write_record(8)
local wait = 0
if ARGV[5] == '1' then
  wait = take_allowance(KEYS[5], KEYS[6], tonumber(ARGV[6]), tonumber(ARGV[7]))
end
redis.call('SET', KEYS[4], wait, 'EX', 120)
return wait
