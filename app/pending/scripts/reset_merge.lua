-- Recovery: move what the memory fallback held for one address into Redis. Counters keep the
-- larger value; the reset is written unless Redis holds one issued later.
-- KEYS: reset hash, reset attempts counter, login failures counter (one hash tag: the shard of the id)
-- ARGV: ttl_ms, issued_at_ms (0: no reset held), attempts, attempts_ttl, failures,
--       failures_ttl, the reset's fields as a JSON list [field, value, ...]
for i, key in ipairs({KEYS[2], KEYS[3]}) do
  local held = tonumber(ARGV[1 + 2 * i])
  if held > tonumber(redis.call('GET', key) or '0') then
    redis.call('SET', key, held, 'EX', ARGV[2 + 2 * i])
  end
end
if ARGV[2] == '0' then return 0 end
local stored = redis.call('HGET', KEYS[1], 'i')
if stored and tonumber(stored) >= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[7])))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
