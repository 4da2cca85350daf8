--! include _count
-- How many registrations are pending: sweep the minutes that have passed out of the total
-- (see _record.lua), then read it; plus records of the earlier layout not yet upgraded (their
-- index). A record expiring within the current minute is still counted until it ends.
-- KEYS: count hash, index zset (earlier layout)
-- ARGV: now (seconds)
sweep(KEYS[1], math.floor(tonumber(ARGV[1]) / 60))
local total = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if total < 0 then total = 0 end
return total + redis.call('ZCOUNT', KEYS[2], ARGV[1], '+inf')
