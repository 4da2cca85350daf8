--! include _count
--! include _upgrade
--! include _answer
-- Claim the registration a link of the earlier format points at (emailed before the upgrade):
-- such a token carries no id, so its lookup key <prefix>token:<hex digest> names the record.
-- The record is upgraded first if need be; it keeps the link's hex digest as `o` while that
-- link is current.
-- KEYS: op result key, count hash[, per-address attempts counter of the record the app
--       found the token to name]
-- ARGV: key prefix, now, claim_seconds, op_id, reg_max (empty: no cap), the address id whose
--       counter KEYS[3] is (empty without it), hex token digest, hex token digest, ...
-- With a cap (a claim made to check a password), the claim is refused once that counter is
-- spent, as in claim_token.lua; a token that names another record than the one whose counter
-- came (it was replaced in between) is answered as unknown.
-- Returns the answer of _answer.lua (ok, busy, locked or unknown).
local prev = redis.call('GET', KEYS[1])
if prev then return prev end
local now = tonumber(ARGV[2])
for i = 7, #ARGV do
  local id = redis.call('GET', ARGV[1] .. 'token:' .. ARGV[i])
  if id then
    local key = ARGV[1] .. 'pending:' .. id
    upgrade(key, KEYS[2], id)
    local rec = redis.call('HMGET', key, 'o', 'w', 'z')
    if rec[1] == ARGV[i] then
      if ARGV[5] ~= '' then
        if not KEYS[3] or id ~= ARGV[6] then return answer(KEYS[1], 'unknown') end
        if tonumber(redis.call('GET', KEYS[3]) or '0') >= tonumber(ARGV[5]) then
          return answer(KEYS[1], 'locked', nil, redis.call('TTL', KEYS[3]))
        end
      end
      if rec[2] and rec[2] ~= ARGV[4] and tonumber(rec[3]) > now then
        return answer(KEYS[1], 'busy')
      end
      redis.call('HSET', key, 'w', ARGV[4], 'z', now + tonumber(ARGV[3]))
      return answer(KEYS[1], 'ok', nil, nil, id, redis.call('HGETALL', key))
    end
  end
end
return answer(KEYS[1], 'unknown')
