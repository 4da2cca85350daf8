-- Included (first) by the scripts that count records. Shared conventions of every record
-- script: the record's key is KEYS[1] (<prefix>pending:<id>), the count hash KEYS[2] and the
-- address id ARGV[1]; the key prefix is read off the record's key.
--
-- Counting: the count hash maps a minute, floor(expires_at / 60), to how many records expire
-- in it, and keeps their total in field `n`. A script that writes a record adds it to its
-- minute and to `n`; one that replaces or removes it takes it out again, in the same step.
-- `sweep` (run by counting) subtracts the minutes that have passed, each once, and notes in
-- field `s` the last minute swept, so counting costs the same whatever the number of records.

local function integer(n)
  return string.format('%d', n)
end

local function key_prefix(key, id)
  return string.sub(key, 1, #key - #id - #'pending:')
end

-- The last minute already swept out of the total (read once per script run).
local swept
local function swept_minute(count_key)
  if swept == nil then swept = tonumber(redis.call('HGET', count_key, 's') or '-1') end
  return swept
end

-- The writer's current minute, when the script was told the time. Counting never sweeps a
-- minute that has not ended on the counting host's clock, so while the app's hosts keep their
-- clocks within a minute of each other (NTP), a minute after this one cannot have been swept
-- yet and `s` need not be read.
local now_minute
local function set_now(seconds)
  now_minute = math.floor(tonumber(seconds) / 60)
end

local function is_swept(count_key, minute)
  if now_minute and minute > now_minute then return false end
  return minute <= swept_minute(count_key)
end

-- Add delta to the count of the minute a record expiring at `expires` (seconds) belongs to,
-- unless that minute has been swept already (the record is then counted as expired).
local function count_bucket(count_key, expires, delta)
  if not expires then return end
  local minute = math.floor(tonumber(expires) / 60)
  if is_swept(count_key, minute) then return end
  minute = integer(minute)
  if redis.call('HINCRBY', count_key, minute, delta) == 0 then
    redis.call('HDEL', count_key, minute)
  end
  redis.call('HINCRBY', count_key, 'n', delta)
end

-- Move one record from the minute of `old` to the minute of `new` (a resend resets the TTL).
local function move_count(count_key, old, new)
  local from = math.floor(tonumber(old) / 60)
  local to = math.floor(tonumber(new) / 60)
  if from == to then return end
  if is_swept(count_key, from) or is_swept(count_key, to) then
    count_bucket(count_key, old, -1)
    count_bucket(count_key, new, 1)
    return
  end
  if redis.call('HINCRBY', count_key, integer(from), -1) == 0 then
    redis.call('HDEL', count_key, integer(from))
  end
  redis.call('HINCRBY', count_key, integer(to), 1)  -- the total is unchanged
end

-- Subtract every minute before `minute` from the total; returns how many records they held.
local function sweep(count_key, minute)
  local last = minute - 1
  local done = swept_minute(count_key)
  if done >= last then return 0 end
  local removed = 0
  if done >= 0 and last - done <= 120 then
    for m = done + 1, last do
      local field = integer(m)
      local n = redis.call('HGET', count_key, field)
      if n then
        removed = removed + tonumber(n)
        redis.call('HDEL', count_key, field)
      end
    end
  else
    -- The first sweep, or after a pause of hours: every bucket once (at most one per minute
    -- of PENDING_TTL_SECONDS), cheaper than asking for each minute that passed.
    local flat = redis.call('HGETALL', count_key)
    for i = 1, #flat, 2 do
      local m = tonumber(flat[i])
      if m and m <= last then
        removed = removed + tonumber(flat[i + 1])
        redis.call('HDEL', count_key, flat[i])
      end
    end
  end
  swept = last
  redis.call('HSET', count_key, 's', integer(last))
  if removed ~= 0 then redis.call('HINCRBY', count_key, 'n', -removed) end
  return removed
end

