--! include _count
--! include _upgrade
-- Upgrade records of the earlier layout to today's (see _record.lua); safe to run again and
-- alongside traffic, since every script upgrades a record before it touches it.
-- KEYS: count hash, pending hash, pending hash, ...
-- ARGV: address id, address id, ... (one per pending hash)
-- Returns how many records were rewritten.
local upgraded = 0
for i = 2, #KEYS do
  upgraded = upgraded + upgrade(KEYS[i], KEYS[1], ARGV[i - 1])
end
return upgraded
