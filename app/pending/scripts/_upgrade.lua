-- Included (after _count) by the scripts that may meet a record of the earlier layout (long
-- field names, hex digests, float times; counted in the sorted set <prefix>index and found
-- from a link through <prefix>token:<hex digest>): `upgrade` rewrites it in today's layout
-- (app/pending/model.py) the first time a script meets it; `flask pending migrate` does the
-- rest.

local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

-- 64 hex characters (32 bytes) as base64url without padding (43 characters).
local function hex_to_text(hex)
  if not hex or hex == '' then return nil end
  local out = {}
  for i = 1, #hex, 6 do
    local chunk = hex:sub(i, i + 5)
    local bits = #chunk * 4
    local n = tonumber(chunk, 16) * 2 ^ (24 - bits)
    for j = 1, math.ceil(bits / 6) do
      local index = math.floor(n / 2 ^ (24 - 6 * j)) % 64
      out[#out + 1] = B64:sub(index + 1, index + 1)
    end
  end
  return table.concat(out)
end

local function ms(seconds)
  return integer(math.floor(tonumber(seconds) * 1000 + 0.5))
end

-- Rewrite a record of the earlier layout in today's, keeping its remaining TTL, its attempts,
-- its claim and (as `o`) the lookup key of the link already emailed; move it from the index
-- to the count. A record already in today's layout (or none) is left alone. Returns 1 when
-- it rewrote one. tests/test_store_contract.py checks the result against model.py.
local function upgrade(key, count_key, id)
  -- HGET rather than HEXISTS: the signup ACL user (deploy/redis.conf) is allowed HGET.
  if not redis.call('HGET', key, 'email') then return 0 end
  local flat = redis.call('HGETALL', key)
  local old = {}
  for i = 1, #flat, 2 do old[flat[i]] = flat[i + 1] end
  local new = {}
  local function put(field, value)
    if value and value ~= '' then
      new[#new + 1] = field
      new[#new + 1] = value
    end
  end
  put('e', old['email'])
  local hash = old['password_hash'] or ''
  local head, tail = string.match(hash, '^(.*)%$([^$]*)$')
  if old['password_hash_digest'] then
    head, tail = hash, old['password_hash_digest']
  elseif #hash <= 64 or not head or head == '' then
    head, tail = hash, nil
  end
  new[#new + 1] = 'p'
  new[#new + 1] = head
  put('h', tail)
  put('n', old['name'])
  if old['locale'] ~= 'en' then put('l', old['locale']) end
  put('c', hex_to_text(old['code_digest']))
  put('o', old['token_digest'])
  put('b', hex_to_text(old['browser_digest']))
  local issued = ms(old['code_issued_at'])
  put('i', issued)
  local created = ms(old['created_at'] or old['code_issued_at'])
  if created ~= issued then put('k', created) end
  local updated = ms(old['updated_at'] or old['code_issued_at'])
  if updated ~= issued then put('u', updated) end
  local expires = integer(math.floor(tonumber(old['expires_at'])))
  put('x', expires)
  if old['code_attempts'] ~= '0' then put('a', old['code_attempts']) end
  put('w', old['claim_op'])
  put('z', old['claim_until'])
  local ttl = redis.call('PTTL', key)
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(new))
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  count_bucket(count_key, expires, 1)
  redis.call('ZREM', key_prefix(key, id) .. 'index', id)
  return 1
end
