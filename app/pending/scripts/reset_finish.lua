-- The new password is committed: delete the reset (its code and link die), but only while this
-- op still holds the claim, and lift the account's sign-in throttle in the same step.
-- KEYS: reset hash, login failures counter (one hash tag: the shard of the id)
-- ARGV: op_id
if redis.call('HGET', KEYS[1], 'w') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
