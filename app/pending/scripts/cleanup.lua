--! include _count
-- Sweep the minutes that have passed out of the count and drop the index entries of expired
-- records of the earlier layout; returns how many records they held (counting sweeps too, so
-- this is often 0: Redis expires the records themselves). Then the total is worked out again
-- from the minutes left, so a count that was ever put wrong mends itself here.
-- KEYS: count hash, index zset (earlier layout)
-- ARGV: now (seconds)
local removed = sweep(KEYS[1], math.floor(tonumber(ARGV[1]) / 60))
local total = 0
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if tonumber(flat[i]) then total = total + tonumber(flat[i + 1]) end
end
redis.call('HSET', KEYS[1], 'n', total)
return removed + redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
