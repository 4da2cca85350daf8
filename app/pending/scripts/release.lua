-- Drop a claim after a failed promotion; optionally count a wrong attempt (wrong password).
-- KEYS: pending hash, per-address attempts counter, op marker key
-- ARGV: op_id, count_wrong (0/1), window
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', 120) == false then return 0 end
if redis.call('HGET', KEYS[1], 'w') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'w', 'z')
if ARGV[2] == '1' then
  redis.call('HINCRBY', KEYS[1], 'a', 1)
  if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
end
return 1
