--! include _count
--! include _record
-- Delete a registration (whatever its layout) and take it out of the count.
-- KEYS: pending hash, count hash
-- ARGV: address id
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
forget(KEYS[1], KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
