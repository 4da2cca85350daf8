--! include _answer
-- Claim the registration a link token points at: the token carries the record's address id,
-- so this reads that one record and compares the stored token digest.
-- KEYS: pending hash (from the id in the token), op result key
-- ARGV: address id, now, claim_seconds, op_id, token digest, token digest, ...
-- Returns the answer of _answer.lua (ok, busy or unknown).
local prev = redis.call('GET', KEYS[2])
if prev then return prev end
local now = tonumber(ARGV[2])
local rec = redis.call('HMGET', KEYS[1], 't', 'w', 'z')
if rec[1] then
  for i = 5, #ARGV do
    if ARGV[i] == rec[1] then
      if rec[2] and rec[2] ~= ARGV[4] and tonumber(rec[3]) > now then
        return answer(KEYS[2], 'busy')
      end
      redis.call('HSET', KEYS[1], 'w', ARGV[4], 'z', now + tonumber(ARGV[3]))
      return answer(KEYS[2], 'ok', nil, nil, nil, ARGV[1], redis.call('HGETALL', KEYS[1]))
    end
  end
end
return answer(KEYS[2], 'unknown')
