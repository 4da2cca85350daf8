-- Check a code atomically: enforce the caps, count a wrong code, claim the record when right.
-- KEYS: pending hash, per-address attempts counter, op result key
-- ARGV: now, code_ttl, code_max, reg_max, window, claim_seconds, op_id, count_unknown (0/1),
--       digest, digest, ...
-- Returns a JSON object; the same op_id sent again (a retry after a lost reply) gets the same
-- answer instead of counting twice.
local prev = redis.call('GET', KEYS[3])
if prev then return prev end
local function answer(result)
  local encoded = cjson.encode(result)
  redis.call('SET', KEYS[3], encoded, 'EX', 120)
  return encoded
end
local function count_wrong()
  local n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[5]) end
  return n
end
local now = tonumber(ARGV[1])
local code_max = tonumber(ARGV[3])
local reg_max = tonumber(ARGV[4])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if used >= reg_max then
  return answer({status = 'locked', retry_after = redis.call('TTL', KEYS[2])})
end
-- Every refused code counts against the address (unknown address, dead or expired code, wrong
-- code alike), so the per-address lock comes at the same point whatever the address's state.
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[8] == '1' then used = count_wrong() end
  return answer({status = 'unknown', address_left = math.max(0, reg_max - used)})
end
local rec = redis.call('HMGET', KEYS[1], 'code_digest', 'code_issued_at', 'code_attempts',
                       'claim_op', 'claim_until')
if rec[4] and rec[4] ~= ARGV[7] and tonumber(rec[5]) > now then
  return answer({status = 'busy'})
end
local tried = tonumber(rec[3] or '0')
if tried >= code_max then
  used = count_wrong()
  return answer({status = 'code_dead', address_left = math.max(0, reg_max - used)})
end
if tonumber(rec[2]) + tonumber(ARGV[2]) < now then
  used = count_wrong()
  return answer({status = 'expired', address_left = math.max(0, reg_max - used)})
end
for i = 9, #ARGV do
  if ARGV[i] == rec[1] then
    redis.call('HSET', KEYS[1], 'claim_op', ARGV[7], 'claim_until', now + tonumber(ARGV[6]))
    return answer({status = 'ok', record = redis.call('HGETALL', KEYS[1])})
  end
end
tried = redis.call('HINCRBY', KEYS[1], 'code_attempts', 1)
used = count_wrong()
local left = math.min(code_max - tried, reg_max - used)
if left < 0 then left = 0 end
return answer({status = 'wrong', attempts_left = left})
