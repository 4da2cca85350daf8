-- Delete a registration and take it out of the count; with an op id (a promoted
-- registration), only while that op still holds the claim.
-- KEYS (one hash tag): record, count shard
-- ARGV: [op_id]
-- Returns 1 when it deleted the record, else 0.

-- Counting: as in save.lua (the same block).
local function count_record(count_key, expires, delta, now_minute)
  if not expires then return end
  local minute = math.floor(tonumber(expires) / 60)
  if not (now_minute and minute > now_minute)
      and minute <= tonumber(redis.call('HGET', count_key, 's') or '-1') then
    return
  end
  local field = string.format('%d', minute)
  if redis.call('HINCRBY', count_key, field, delta) == 0 then
    redis.call('HDEL', count_key, field)
  end
  redis.call('HINCRBY', count_key, 'n', delta)
end

local rec = redis.call('HMGET', KEYS[1], 'x', 'w')
if not rec[1] then return 0 end
if ARGV[1] and rec[2] ~= ARGV[1] then return 0 end
count_record(KEYS[2], rec[1], -1)
redis.call('DEL', KEYS[1])
return 1
