--! include _allowance
--! include _count
--! include _record
-- Create or replace a pending registration and count it. For a signup (KEYS holds the op
-- result key, the two allowance keys and the address's stand-in code count) an email is taken
-- from the address's allowance in the same step, and the answer is kept under the op id so a
-- retried call takes no second email. A signup over the allowance sends nothing, so it
-- changes nothing: the registration already pending, its code and link stay as they were.
-- One that may send starts the stand-in count again (check_code.lua), as a new code does.
-- Without the allowance a save is idempotent as it is (sent twice, it writes the same record
-- and counts it once), so it keeps no op result.
-- KEYS: pending hash, count hash[, op result key, cooldown key, hourly key, per-code attempts
--       counter of an address with no pending record]
-- ARGV: address id, ttl_ms, expires_at (whole seconds), the record's fields as a JSON list
--       [field, value, ...][, cooldown, per_hour]
-- The fields travel as one JSON argument: redis-py packs every argument in Python, and one
-- string costs far less than sixteen.
-- Returns 0 (stored), or the seconds to wait before an email may be sent (nothing stored).
set_now(tonumber(ARGV[3]) - tonumber(ARGV[2]) / 1000)
if #KEYS == 2 then
  write_record(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], cjson.decode(ARGV[4]))
  return 0
end
local prev = redis.call('GET', KEYS[3])
if prev then return tonumber(prev) end
local wait = take_allowance(KEYS[4], KEYS[5], tonumber(ARGV[5]), tonumber(ARGV[6]))
if wait == 0 then
  write_record(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], cjson.decode(ARGV[4]))
  redis.call('DEL', KEYS[6])
end
redis.call('SET', KEYS[3], wait, 'EX', 120)
return wait
