-- Included by save and merge, which share this layout: KEYS[1] pending hash, KEYS[2] index
-- zset, KEYS[3] the new token key; ARGV[1] ttl_ms, ARGV[2] expires_at, ARGV[3] address_id,
-- ARGV[4] token key prefix, and the hash's field/value pairs from ARGV[first] on.
-- Replaces the record, drops the old token lookup, writes the new one and the index entry.
local function write_record(first)
  local old = redis.call('HGET', KEYS[1], 'token_digest')
  if old and (ARGV[4] .. old) ~= KEYS[3] then redis.call('DEL', ARGV[4] .. old) end
  redis.call('DEL', KEYS[1])
  local fields = {}
  for i = first, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
end
