--! include _count
--! include _upgrade
--! include _answer
-- Check a code atomically: enforce the caps, count a wrong code, claim the record when right.
-- KEYS: pending hash, count hash, per-address attempts counter, op result key
-- ARGV: address id, now, "code_ttl code_max reg_max window claim_seconds count_unknown" (one
--       argument: the caps are the same for every call, and each argument costs the app time),
--       op_id, digest, digest, ...
-- Returns the answer of _answer.lua; the same op_id sent again (a retry after a lost reply)
-- gets the same answer instead of counting twice.
local prev = redis.call('GET', KEYS[4])
if prev then return prev end
local code_ttl, code_max, reg_max, window, claim_seconds, count_unknown =
  string.match(ARGV[3], '^(%d+) (%d+) (%d+) (%d+) (%d+) ([01])$')
code_max, reg_max = tonumber(code_max), tonumber(reg_max)
local function count_wrong()
  local n = redis.call('INCR', KEYS[3])
  if n == 1 then redis.call('EXPIRE', KEYS[3], window) end
  return n
end
local now = tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
if used >= reg_max then
  return answer(KEYS[4], 'locked', nil, redis.call('TTL', KEYS[3]))
end
local rec = redis.call('HMGET', KEYS[1], 'c', 'i', 'a', 'w', 'z', 'email')
if rec[6] then
  upgrade(KEYS[1], KEYS[2], ARGV[1])
  rec = redis.call('HMGET', KEYS[1], 'c', 'i', 'a', 'w', 'z')
end
-- Every refused code counts against the address (unknown address, dead or expired code, wrong
-- code alike), so the per-address lock comes at the same point whatever the address's state.
if not rec[2] then
  if count_unknown == '1' then used = count_wrong() end
  return answer(KEYS[4], 'unknown', nil, nil, math.max(0, reg_max - used))
end
if rec[4] and rec[4] ~= ARGV[4] and tonumber(rec[5]) > now then
  return answer(KEYS[4], 'busy')
end
local tried = tonumber(rec[3] or '0')
if tried >= code_max then
  used = count_wrong()
  return answer(KEYS[4], 'code_dead', nil, nil, math.max(0, reg_max - used))
end
if tonumber(rec[2]) / 1000 + tonumber(code_ttl) < now then
  used = count_wrong()
  return answer(KEYS[4], 'expired', nil, nil, math.max(0, reg_max - used))
end
for i = 5, #ARGV do
  if ARGV[i] == rec[1] then
    redis.call('HSET', KEYS[1], 'w', ARGV[4], 'z', now + tonumber(claim_seconds))
    return answer(KEYS[4], 'ok', nil, nil, nil, ARGV[1], redis.call('HGETALL', KEYS[1]))
  end
end
tried = redis.call('HINCRBY', KEYS[1], 'a', 1)
used = count_wrong()
local left = math.min(code_max - tried, reg_max - used)
if left < 0 then left = 0 end
return answer(KEYS[4], 'wrong', left)
