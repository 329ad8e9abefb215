-- KEYS: booking, request-id, patient index, pending index, outbox, outbox due, date index, doctor index,
--       reference
-- ARGV: booking id, record, created ms, outbox id, outbox batch, has request id, max pending (0: none),
--       has doctor, has reference
if ARGV[6] == '1' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return existing end
end
local max_pending = tonumber(ARGV[7])
if max_pending > 0 and redis.call('ZCARD', KEYS[4]) >= max_pending then return '' end
-- the reference is claimed first: taken, nothing is written and the caller draws another
if ARGV[9] == '1' and not redis.call('SET', KEYS[9], ARGV[1], 'NX') then return '~' end
if ARGV[6] == '1' then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('HSET', KEYS[1], 'v', 1, 'data', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[3], ARGV[1])
if ARGV[8] == '1' then redis.call('ZADD', KEYS[8], ARGV[3], ARGV[1]) end
redis.call('HSET', KEYS[5], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[4])
return ARGV[1]
