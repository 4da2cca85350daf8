-- Claim the password reset an emailed link points at: the link token carries the address id,
-- so this reads that one record, checks the link has not expired and compares its digest.
-- Wrong codes do not affect the link (as for a signup link).
-- KEYS: reset hash, op result key (one hash tag: the shard of the id)
-- ARGV: address id, now, claim_seconds, op_id, token digest, token digest, ...
-- Returns the answer of `answer` below (ok, busy or unknown).
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
local prev = redis.call('GET', KEYS[2])
if prev then return prev end
local now = tonumber(ARGV[2])
local rec = redis.call('HMGET', KEYS[1], 't', 'x', 'w', 'z')
if rec[1] and tonumber(rec[2]) >= now then
  for i = 5, #ARGV do
    if ARGV[i] == rec[1] then
      if rec[3] and rec[3] ~= ARGV[4] and tonumber(rec[4]) > now then
        return answer(KEYS[2], 'busy')
      end
      redis.call('HSET', KEYS[1], 'w', ARGV[4], 'z', now + tonumber(ARGV[3]))
      return answer(KEYS[2], 'ok', nil, nil, ARGV[1], redis.call('HGETALL', KEYS[1]))
    end
  end
end
return answer(KEYS[2], 'unknown')
