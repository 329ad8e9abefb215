-- KEYS: patient, old phone index, new phone index, old email index, new email index
-- ARGV: id, the record as read, the new record, phone changes ('1'/'0'), email changes ('1'/'0'),
--       old email ('' none), new email ('' none)
-- Compare-and-set on the whole record, so two updates of different fields both land; the new phone
-- is claimed (and the old one let go) in the same step, so one phone never names two patients.
local current = redis.call('GET', KEYS[1])
if not current then return {'missing', ''} end
if current ~= ARGV[2] then return {'conflict', ''} end
if ARGV[4] == '1' then
  local holder = redis.call('GET', KEYS[3])
  if holder and holder ~= ARGV[1] then return {'taken', holder} end
  redis.call('SET', KEYS[3], ARGV[1])
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
end
if ARGV[5] == '1' then
  if ARGV[6] ~= '' then redis.call('SREM', KEYS[4], ARGV[1]) end
  if ARGV[7] ~= '' then redis.call('SADD', KEYS[5], ARGV[1]) end
end
redis.call('SET', KEYS[1], ARGV[3])
return {'updated', ''}
