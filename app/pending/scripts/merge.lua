-- Recovery: move a registration held in memory into Redis, unless Redis has one updated later;
-- keep the larger per-address attempt counter.
-- KEYS (one hash tag): record, count shard, per-address attempts counter
-- ARGV: ttl_ms, expires_at (whole seconds), updated_at (ms), attempts, attempts_ttl,
--       the record's fields as a JSON list [field, value, ...]

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

local attempts = tonumber(ARGV[4])
if attempts > tonumber(redis.call('GET', KEYS[3]) or '0') then
  redis.call('SET', KEYS[3], attempts, 'EX', ARGV[5])
end
local stored = redis.call('HMGET', KEYS[1], 'u', 'i', 'x')
local current = stored[1] or stored[2]
if current and tonumber(current) >= tonumber(ARGV[3]) then return 0 end
if stored[3] then
  count_record(KEYS[2], stored[3], -1)
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[6])))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
count_record(KEYS[2], ARGV[2], 1)
return 1
