-- Claim the registration a link token points at.
-- KEYS: op result key
-- ARGV: now, claim_seconds, op_id, key prefix, token digest, token digest, ...
local prev = redis.call('GET', KEYS[1])
if prev then return prev end
local function answer(result)
  local encoded = cjson.encode(result)
  redis.call('SET', KEYS[1], encoded, 'EX', 120)
  return encoded
end
local now = tonumber(ARGV[1])
for i = 5, #ARGV do
  local id = redis.call('GET', ARGV[4] .. 'token:' .. ARGV[i])
  if id then
    local key = ARGV[4] .. 'pending:' .. id
    local rec = redis.call('HMGET', key, 'token_digest', 'claim_op', 'claim_until')
    if rec[1] == ARGV[i] then
      if rec[2] and rec[2] ~= ARGV[3] and tonumber(rec[3]) > now then
        return answer({status = 'busy'})
      end
      redis.call('HSET', key, 'claim_op', ARGV[3], 'claim_until', now + tonumber(ARGV[2]))
      return answer({status = 'ok', record = redis.call('HGETALL', key)})
    end
  end
end
return answer({status = 'unknown'})
