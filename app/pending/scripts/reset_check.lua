-- Check a password-reset code atomically, with the caps of a signup code (check_code.lua):
-- refuse when the address's wrong reset codes reached reg_max, count every refused code (an
-- unknown address, a dead or expired code, a wrong one), and claim the reset when right.
-- KEYS: reset hash, per-address reset attempts counter, op result key, per-code count of an
--       address with no reset (one hash tag: the shard of the id)
-- With no reset, the per-code count is KEYS[4], a stand-in for the code a reset would have
-- (as check_code.lua does for signups), so an address with no account goes from "not right"
-- to "tried too many times" after as many tries as one with a reset; saving or removing the
-- address's reset (every forgotten-password request does one) starts it again.
-- ARGV: address id, now, "code_ttl code_max reg_max window claim_seconds count_unknown",
--       op_id, digest, digest, ...
-- Returns the answer of `answer` below; the same op_id sent again gets the same answer.
-- The same block as in check_code.lua: the answer, kept under the op id so that a retried
-- call gets it again: "<status> <attempts_left> <retry_after>" (a field left empty when it
-- does not apply) and, for a claim ("ok"), a newline, the address id, a newline and the record
-- as JSON.
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
local now = tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if used >= reg_max then
  return answer(KEYS[3], 'locked', nil, redis.call('TTL', KEYS[2]))
end
local rec = redis.call('HMGET', KEYS[1], 'c', 'i', 'a', 'w', 'z')
if not rec[2] then
  if count_unknown ~= '1' then return answer(KEYS[3], 'unknown') end
  count_wrong()
  if tonumber(redis.call('GET', KEYS[4]) or '0') >= code_max then
    return answer(KEYS[3], 'code_dead')
  end
  if redis.call('INCR', KEYS[4]) == 1 then redis.call('EXPIRE', KEYS[4], window) end
  return answer(KEYS[3], 'unknown')
end
if rec[4] and rec[4] ~= ARGV[4] and tonumber(rec[5]) > now then
  return answer(KEYS[3], 'busy')
end
local tried = tonumber(rec[3] or '0')
local refused
if tried >= code_max then
  refused = 'code_dead'
elseif tonumber(rec[2]) / 1000 + tonumber(code_ttl) < now then
  refused = 'expired'
end
if refused then
  count_wrong()
  return answer(KEYS[3], refused)
end
for i = 5, #ARGV do
  if ARGV[i] == rec[1] then
    redis.call('HSET', KEYS[1], 'w', ARGV[4], 'z', now + tonumber(claim_seconds))
    return answer(KEYS[3], 'ok', nil, nil, ARGV[1], redis.call('HGETALL', KEYS[1]))
  end
end
tried = redis.call('HINCRBY', KEYS[1], 'a', 1)
used = count_wrong()
return answer(KEYS[3], 'wrong', math.max(0, math.min(code_max - tried, reg_max - used)))
