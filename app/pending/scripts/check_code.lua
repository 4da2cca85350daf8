-- Check a code atomically: enforce the caps, count a refused code, claim the record when right.
-- KEYS (one hash tag): record, per-address attempts counter, op result key, per-code
--       attempts counter of an address with no pending record
-- ARGV: address id, now, "code_ttl code_max reg_max window claim_seconds count_unknown" (one
--       argument: the caps are the same for every call, and each argument costs the app time),
--       op_id, digest, digest, ...
-- Returns the answer (see `answer` below); the same op_id sent again (a retry after a lost
-- reply) gets the same answer instead of counting twice.
--
-- Every refused code counts on the code and on the address, whatever the address's state
-- (unknown address, dead, expired or wrong code alike), and the answer says how many tries
-- are left: so the numbers the signing-up browser reads, and the point where the address
-- locks, are the same for a pending address and for one with no record (an account, or
-- nothing). With no record, the per-code count is KEYS[4]: a stand-in for the code a signup
-- or resend would have issued, started again whenever one of them sends an email.

-- The answer of the check scripts (check_code, claim_token: the same block in each), kept
-- under the op id so that a retried call gets the same answer again:
--   "<status> <attempts_left> <retry_after>"   (a field left empty when it does not apply)
-- and, for a claim ("ok"), then a newline, the address id, a newline and the record as JSON.
-- One plain string rather than a JSON object: the app reads it for a fraction of the cost.
local function answer(op_key, status, attempts_left, retry_after, id, record)
  local text = status .. ' ' .. (attempts_left or '') .. ' ' .. (retry_after or '')
  if record then text = text .. '\n' .. id .. '\n' .. cjson.encode(record) end
  redis.call('SET', op_key, text, 'EX', 120)
  return text
end

local prev = redis.call('GET', KEYS[3])
if prev then return prev end
local code_ttl, code_max, reg_max, window, claim_seconds, count_unknown =
  string.match(ARGV[3], '^(%d+) (%d+) (%d+) (%d+) (%d+) ([01])$')
code_max, reg_max = tonumber(code_max), tonumber(reg_max)
local function count_wrong()
  local n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('EXPIRE', KEYS[2], window) end
  return n
end
-- Count a refused code whose code has had `tried` wrong tries, this one included.
local function refuse(status, tried)
  local left = math.min(code_max - tried, reg_max - count_wrong())
  if left < 0 then left = 0 end
  return answer(KEYS[3], status, left)
end
local now = tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if used >= reg_max then
  return answer(KEYS[3], 'locked', nil, redis.call('TTL', KEYS[2]))
end
local rec = redis.call('HMGET', KEYS[1], 'c', 'i', 'a', 'w', 'z')
if not rec[2] then
  -- Uncounted while the app cannot be sure the record is not elsewhere (fallback).
  if count_unknown ~= '1' then return answer(KEYS[3], 'unknown') end
  if tonumber(redis.call('GET', KEYS[4]) or '0') >= code_max then
    count_wrong()
    return answer(KEYS[3], 'code_dead')
  end
  local tried = redis.call('INCR', KEYS[4])
  if tried == 1 then redis.call('EXPIRE', KEYS[4], window) end
  return refuse('unknown', tried)
end
if rec[4] and rec[4] ~= ARGV[4] and tonumber(rec[5]) > now then
  return answer(KEYS[3], 'busy')
end
if tonumber(rec[3] or '0') >= code_max then
  count_wrong()
  return answer(KEYS[3], 'code_dead')
end
local expired = tonumber(rec[2]) / 1000 + tonumber(code_ttl) < now
if not expired then
  for i = 5, #ARGV do
    if ARGV[i] == rec[1] then
      redis.call('HSET', KEYS[1], 'w', ARGV[4], 'z', now + tonumber(claim_seconds))
      return answer(KEYS[3], 'ok', nil, nil, ARGV[1], redis.call('HGETALL', KEYS[1]))
    end
  end
end
return refuse(expired and 'expired' or 'wrong', redis.call('HINCRBY', KEYS[1], 'a', 1))
