-- Delete a promoted registration, but only while this op still holds the claim.
-- KEYS: pending hash, index zset
-- ARGV: op_id, address_id, token key prefix
if redis.call('HGET', KEYS[1], 'claim_op') ~= ARGV[1] then return 0 end
local token = redis.call('HGET', KEYS[1], 'token_digest')
if token then redis.call('DEL', ARGV[3] .. token) end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
