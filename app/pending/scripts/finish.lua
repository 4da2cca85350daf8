--! include _count
--! include _record
-- Delete a promoted registration, but only while this op still holds the claim.
-- KEYS: pending hash, count hash
-- ARGV: address id, op_id
if redis.call('HGET', KEYS[1], 'w') ~= ARGV[2] then return 0 end
forget(KEYS[1], KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
