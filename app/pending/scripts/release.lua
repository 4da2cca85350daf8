-- Drop a claim after a failed promotion; optionally count a refused attempt (a right code or
-- link with a wrong password), on the code and on the address, as a wrong code counts.
-- KEYS (one hash tag): record, per-address attempts counter, op marker key
-- ARGV: op_id, count_wrong (0/1), window, code_max, reg_max
-- Returns the attempts left after a counted attempt (as check_code.lua reports them for a
-- wrong code), else -1. The answer is kept under the op marker, so a retried call (after a
-- lost reply) gets it again and counts nothing twice.
local prev = redis.call('GET', KEYS[3])
if prev then return tonumber(prev) end
local function done(result)
  redis.call('SET', KEYS[3], result, 'EX', 120)
  return result
end
if redis.call('HGET', KEYS[1], 'w') ~= ARGV[1] then return done(-1) end
redis.call('HDEL', KEYS[1], 'w', 'z')
if ARGV[2] ~= '1' then return done(-1) end
local tried = redis.call('HINCRBY', KEYS[1], 'a', 1)
local used = redis.call('INCR', KEYS[2])
if used == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
local left = math.min(tonumber(ARGV[4]) - tried, tonumber(ARGV[5]) - used)
if left < 0 then left = 0 end
return done(left)
