-- Create or replace a pending registration and count it. For a signup (KEYS holds the op
-- result key, the two allowance keys and the address's stand-in code count) an email is taken
-- from the address's allowance in the same step, and the answer is kept under the op id so a
-- retried call takes no second email. A signup over the allowance sends nothing, so it
-- changes nothing: the registration already pending, its code and link stay as they were.
-- One that may send starts the stand-in count again (check_code.lua), as a new code does.
-- Without the allowance a save is idempotent as it is (sent twice, it writes the same record
-- and counts it once), so it keeps no op result.
-- KEYS (one hash tag, see docs/architecture.md): record, count shard[, op result key,
--       cooldown key, hourly key, per-code attempts counter of an address with no record]
-- ARGV: ttl_ms, expires_at (whole seconds), the record's fields as a JSON list
--       [field, value, ...][, cooldown, per_hour]
-- The fields travel as one JSON argument: redis-py packs every argument in Python, and one
-- string costs far less than sixteen.
-- Returns 0 (stored), or the seconds to wait before an email may be sent (nothing stored).

-- Counting (the same block in every script that adds or removes a record; count.lua reads
-- it): the count shard maps a minute, floor(expires_at / 60), to how many records expire in
-- it, `n` holds their total and `s` the last minute swept out of `n`. A minute already swept
-- takes no more changes (its records count as expired). A minute after `now_minute` (the
-- writer's clock) cannot have been swept yet, so `s` is read only when it matters.
local function count_record(count_key, expires, delta, now_minute)
  if not expires then return end
  local minute = math.floor(tonumber(expires) / 60)
  if not (now_minute and minute > now_minute)
      and minute <= tonumber(redis.call('HGET', count_key, 's') or '-1') then
    return
  end
  local field = string.format('%d', minute)
  if redis.call('HINCRBY', count_key, field, delta) == 0 then
    redis.call('HDEL', count_key, field)
  end
  redis.call('HINCRBY', count_key, 'n', delta)
end

-- Take one email from the address's allowance (a cooldown and an hourly cap): 0 when allowed
-- (and taken), else the seconds to wait. (Also in replace_code.lua and reserve_email.lua.)
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

local now_minute = math.floor((tonumber(ARGV[2]) - tonumber(ARGV[1]) / 1000) / 60)
local function write_record()
  local old = redis.call('HGET', KEYS[1], 'x')
  if old then
    count_record(KEYS[2], old, -1, now_minute)
    redis.call('DEL', KEYS[1])
  end
  redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[3])))
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  count_record(KEYS[2], ARGV[2], 1, now_minute)
end

if #KEYS == 2 then
  write_record()
  return 0
end
local prev = redis.call('GET', KEYS[3])
if prev then return tonumber(prev) end
local wait = take_allowance(KEYS[4], KEYS[5], tonumber(ARGV[4]), tonumber(ARGV[5]))
if wait == 0 then
  write_record()
  redis.call('DEL', KEYS[6])
end
redis.call('SET', KEYS[3], wait, 'EX', 120)
return wait
