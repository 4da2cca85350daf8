-- How many registrations are pending in the count shards given (all of one hash tag on a
-- cluster, every shard in one call on one Redis): sweep the minutes that have passed out of
-- each shard's total, then add the totals up. A record expiring within the current minute is
-- still counted until that minute ends. With ARGV[2] = 'rebuild' (cleanup), each total is
-- worked out again from its minutes, so a count that was ever put wrong mends itself; the
-- answer is then how many expired records the sweep took out.
-- KEYS: count shard, count shard, ...
-- ARGV: now (seconds)[, 'rebuild']
-- Shard layout: see save.lua (minute -> records expiring in it, `n` total, `s` last swept).
local last = math.floor(tonumber(ARGV[1]) / 60) - 1
local rebuild = ARGV[2] == 'rebuild'
local total, removed = 0, 0
for _, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 's', 'n')  -- one call per shard: last swept, total
  local done = tonumber(state[1] or '-1')
  local gone = 0
  if done < last then
    if done >= 0 and last - done <= 120 then
      for m = done + 1, last do
        local field = string.format('%d', m)
        local n = redis.call('HGET', key, field)
        if n then
          gone = gone + tonumber(n)
          redis.call('HDEL', key, field)
        end
      end
    else
      -- The first sweep, or after a pause of hours: every bucket once (at most one per
      -- minute of PENDING_TTL_SECONDS), cheaper than asking for each minute that passed.
      local flat = redis.call('HGETALL', key)
      for i = 1, #flat, 2 do
        local m = tonumber(flat[i])
        if m and m <= last then
          gone = gone + tonumber(flat[i + 1])
          redis.call('HDEL', key, flat[i])
        end
      end
    end
    redis.call('HSET', key, 's', string.format('%d', last))
    if gone ~= 0 then redis.call('HINCRBY', key, 'n', -gone) end
  end
  removed = removed + gone
  if rebuild then
    local n = 0
    local flat = redis.call('HGETALL', key)
    for i = 1, #flat, 2 do
      if tonumber(flat[i]) then n = n + tonumber(flat[i + 1]) end
    end
    redis.call('HSET', key, 'n', n)
  else
    local n = tonumber(state[2] or '0') - gone
    if n > 0 then total = total + n end
  end
end
if rebuild then return removed end
return total
