--! include _allowance
--! include _count
--! include _upgrade
-- Resend: new code and token, old ones dead, TTL reset; the per-address counter is untouched.
-- With the allowance keys, the address's email allowance is taken first (whether or not a
-- registration exists, so the answer never tells), all in one step, and the answer is kept
-- under the op id so a retried call takes no second email. An email allowed also starts the
-- address's stand-in code count again (check_code.lua), as the new code's count starts at 0.
-- Without them the step is idempotent as it is (sent twice, it stores the same code and
-- token) and keeps no answer.
-- KEYS: pending hash, count hash[, op result key, cooldown key, hourly key, per-code attempts
--       counter of an address with no pending record]
-- ARGV: address id, ttl_ms, expires_at (whole seconds), code_digest, token_digest, now (ms)
--       [, cooldown, per_hour]
-- Returns "updated" (then a space and the registration's locale when it is not the default),
-- "missing", or "wait <seconds>".
local op_key = KEYS[3]
if op_key then
  local prev = redis.call('GET', op_key)
  if prev then return prev end
end
local function answer(text)
  if op_key then redis.call('SET', op_key, text, 'EX', 120) end
  return text
end
if op_key then
  local wait = take_allowance(KEYS[4], KEYS[5], tonumber(ARGV[7]), tonumber(ARGV[8]))
  if wait > 0 then return answer('wait ' .. wait) end
  redis.call('DEL', KEYS[6])
end
set_now(tonumber(ARGV[6]) / 1000)
local FIELDS = {'x', 'o', 'token_digest', 'i', 'k', 'l', 'a', 'u'}
local rec = redis.call('HMGET', KEYS[1], unpack(FIELDS))
if rec[3] then
  upgrade(KEYS[1], KEYS[2], ARGV[1])
  rec = redis.call('HMGET', KEYS[1], unpack(FIELDS))
end
if not rec[1] then return answer('missing') end
-- Per-code attempts start again, a link emailed before the upgrade dies; created_at is kept
-- (stored as k only while it differs from i).
local stale = {}
for _, i in ipairs({2, 5, 7, 8}) do
  if rec[i] then stale[#stale + 1] = FIELDS[i] end
end
if #stale > 0 then redis.call('HDEL', KEYS[1], unpack(stale)) end
if rec[2] then redis.call('DEL', key_prefix(KEYS[1], ARGV[1]) .. 'token:' .. rec[2]) end
local created = rec[5] or rec[4]
if created ~= ARGV[6] then
  redis.call('HSET', KEYS[1], 'c', ARGV[4], 't', ARGV[5], 'i', ARGV[6], 'x', ARGV[3],
             'k', created)
else
  redis.call('HSET', KEYS[1], 'c', ARGV[4], 't', ARGV[5], 'i', ARGV[6], 'x', ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
-- The TTL moved: out of its old minute, into the new one.
move_count(KEYS[2], rec[1], ARGV[3])
if rec[6] then return answer('updated ' .. rec[6]) end
return answer('updated')
