-- Shared by the in-app and sent-mark scripts (joined in front of them by clinic_common.lua.source).

-- The patient's in-app line, once per key: 1 if written now, 0 if the key had it already.
local function record_once(once_key, messages_key, line, ttl, keep)
  if not redis.call('SET', once_key, line, 'NX', 'EX', ttl) then return 0 end
  redis.call('LPUSH', messages_key, line)
  redis.call('LTRIM', messages_key, 0, tonumber(keep) - 1)
  return 1
end

-- The sent mark and the delivery's record, together.
local function mark_sent(sent_key, deliveries_key, ttl, field, entry, patient_field, patient_id)
  redis.call('SET', sent_key, '1', 'EX', ttl)
  redis.call('HSET', deliveries_key, field, entry, patient_field, patient_id)
  redis.call('EXPIRE', deliveries_key, ttl)
end
