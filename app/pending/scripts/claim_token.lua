-- Claim the registration a link token points at: the token carries the record's address id,
-- so this reads that one record and compares the stored token digest.
-- KEYS (one hash tag): record (from the id in the token), op result key[, per-address attempts
--       counter]
-- ARGV: address id, now, claim_seconds, op_id, reg_max (empty: no cap), token digest,
--       token digest, ...
-- With the counter and reg_max (a claim made to check a password: another browser than the
-- signing-up one), the claim is refused once the address's wrong attempts are spent, as code
-- entry is. Only the holder of the emailed link learns that: a wrong token is unknown first.
-- Returns the answer (see `answer` below) (ok, busy, locked or unknown).

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
