-- Resend: new code and token, old ones dead, TTL reset; the per-address counter is untouched.
-- With the allowance keys, the address's email allowance is taken first (whether or not a
-- registration exists, so the answer never tells), all in one step, and the answer is kept
-- under the op id so a retried call takes no second email. An email allowed also starts the
-- address's stand-in code count again (check_code.lua), as the new code's count starts at 0.
-- Without them the step is idempotent as it is (sent twice, it stores the same code and
-- token) and keeps no answer.
-- KEYS (one hash tag): record, count shard[, op result key, cooldown key, hourly key,
--       per-code attempts counter of an address with no pending record]
-- ARGV: ttl_ms, expires_at (whole seconds), code_digest, token_digest, now (ms)
--       [, cooldown, per_hour]
-- Returns "updated" (then a space and the registration's locale when it is not the default),
-- "missing", or "wait <seconds>".

-- Counting: as in save.lua (the same block).
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

-- Take one email from the address's allowance: as in save.lua (the same block).
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

local op_key = KEYS[3]
if op_key then
  local prev = redis.call('GET', op_key)
  if prev then return prev end
end
local function answer(text)
  if op_key then redis.call('SET', op_key, text, 'EX', 120) end
  return text
end
if op_key then
  local wait = take_allowance(KEYS[4], KEYS[5], tonumber(ARGV[6]), tonumber(ARGV[7]))
  if wait > 0 then return answer('wait ' .. wait) end
  redis.call('DEL', KEYS[6])
end
local rec = redis.call('HMGET', KEYS[1], 'x', 'i', 'k', 'l', 'a', 'u')
if not rec[1] then return answer('missing') end
-- Per-code attempts start again, updated_at becomes the issue time again (u is stored only
-- while it differs from i); created_at is kept (stored as k only while it differs from i).
if rec[5] or rec[6] then redis.call('HDEL', KEYS[1], 'a', 'u') end
local created = rec[3] or rec[2]
if created ~= ARGV[5] then
  redis.call('HSET', KEYS[1], 'c', ARGV[3], 't', ARGV[4], 'i', ARGV[5], 'x', ARGV[2],
             'k', created)
else
  redis.call('HSET', KEYS[1], 'c', ARGV[3], 't', ARGV[4], 'i', ARGV[5], 'x', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
-- The TTL moved: out of its old minute, into the new one.
local now_minute = math.floor(tonumber(ARGV[5]) / 60000)
if math.floor(tonumber(rec[1]) / 60) ~= math.floor(tonumber(ARGV[2]) / 60) then
  count_record(KEYS[2], rec[1], -1, now_minute)
  count_record(KEYS[2], ARGV[2], 1, now_minute)
end
if rec[4] then return answer('updated ' .. rec[4]) end
return answer('updated')
