--! include _answer
-- Claim the registration a link token points at: the token carries the record's address id,
-- so this reads that one record and compares the stored token digest.
-- KEYS: pending hash (from the id in the token), op result key[, per-address attempts
--       counter]
-- ARGV: address id, now, claim_seconds, op_id, reg_max (empty: no cap), token digest,
--       token digest, ...
-- With the counter and reg_max (a claim made to check a password: another browser than the
-- signing-up one), the claim is refused once the address's wrong attempts are spent, as code
-- entry is. Only the holder of the emailed link learns that: a wrong token is unknown first.
-- Returns the answer of _answer.lua (ok, busy, locked or unknown).
local prev = redis.call('GET', KEYS[2])
if prev then return prev end
local now = tonumber(ARGV[2])
local rec = redis.call('HMGET', KEYS[1], 't', 'w', 'z')
if rec[1] then
  for i = 6, #ARGV do
    if ARGV[i] == rec[1] then
      if KEYS[3] and tonumber(redis.call('GET', KEYS[3]) or '0') >= tonumber(ARGV[5]) then
        return answer(KEYS[2], 'locked', nil, redis.call('TTL', KEYS[3]))
      end
      if rec[2] and rec[2] ~= ARGV[4] and tonumber(rec[3]) > now then
        return answer(KEYS[2], 'busy')
      end
      redis.call('HSET', KEYS[1], 'w', ARGV[4], 'z', now + tonumber(ARGV[3]))
      return answer(KEYS[2], 'ok', nil, nil, ARGV[1], redis.call('HGETALL', KEYS[1]))
    end
  end
end
return answer(KEYS[2], 'unknown')
