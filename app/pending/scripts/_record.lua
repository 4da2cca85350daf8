-- Included (after _count) by the scripts that replace or remove a pending record.
-- Records of the earlier layout (long field names, hex digests, float times; counted in the
-- sorted set <prefix>index and found from a link through <prefix>token:<hex digest>) are
-- taken out of that index and their lookup key removed with them.

-- Take a record out of the books before it is replaced or deleted: its count, and the lookup
-- key of a link emailed before the upgrade (for a record of the earlier layout: its index
-- entry). `r` is HMGET key x o token_digest, when the caller has read it already.
local function forget(key, count_key, id, r)
  r = r or redis.call('HMGET', key, 'x', 'o', 'token_digest')
  if r[3] then
    local prefix = key_prefix(key, id)
    redis.call('ZREM', prefix .. 'index', id)
    redis.call('DEL', prefix .. 'token:' .. r[3])
    return
  end
  count_bucket(count_key, r[1], -1)
  if r[2] then redis.call('DEL', key_prefix(key, id) .. 'token:' .. r[2]) end
end

-- Replace the record with `fields` (a list of field, value, ...) and count it.
local function write_record(key, count_key, id, ttl_ms, expires, fields)
  local r = redis.call('HMGET', key, 'x', 'o', 'token_digest')
  if r[1] or r[3] then
    forget(key, count_key, id, r)
    redis.call('DEL', key)
  end
  redis.call('HSET', key, unpack(fields))
  redis.call('PEXPIRE', key, ttl_ms)
  count_bucket(count_key, expires, 1)
end

