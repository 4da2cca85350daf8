-- Included by the check scripts (check_code, claim_token, claim_legacy). Their answer is one
-- short string, kept under the op id so that a retried call gets the same answer again:
--   "<status> <attempts_left> <retry_after>"   (a field left empty when it does not apply)
-- and, for a claim ("ok"), then a newline, the address id, a newline and the record as JSON.
-- One plain string rather than a JSON object: the app reads it for a fraction of the cost.
local function answer(op_key, status, attempts_left, retry_after, id, record)
  local text = status .. ' ' .. (attempts_left or '') .. ' ' .. (retry_after or '')
  if record then text = text .. '\n' .. id .. '\n' .. cjson.encode(record) end
  redis.call('SET', op_key, text, 'EX', 120)
  return text
end
