-- Per-account sign-in throttling. A sign-in is counted as failed before its password is
-- checked ("take"), so parallel guesses cannot pass the cap together, and taken off again when
-- it did not fail ("refund").
-- KEYS: login failures counter, op result key (one hash tag: the shard of the id)
-- ARGV: "take" or "refund", max failures, window seconds
-- take returns 0 (go ahead) or the seconds until the counter expires; the same op sent again
-- gets the same answer. refund acts once, and only on a take that answered 0.
local prev = redis.call('GET', KEYS[2])
if ARGV[1] == 'take' then
  if prev then return tonumber(prev) end
  local wait = 0
  if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[2]) then
    wait = math.max(1, redis.call('TTL', KEYS[1]))
  elseif redis.call('INCR', KEYS[1]) == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[3])
  end
  redis.call('SET', KEYS[2], wait, 'EX', 120)
  return wait
end
if prev ~= '0' then return 0 end
redis.call('SET', KEYS[2], 'refunded', 'EX', 120)
if redis.call('INCRBY', KEYS[1], -1) <= 0 then redis.call('DEL', KEYS[1]) end
return 1
