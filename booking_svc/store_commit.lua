-- KEYS: booking, pending index, outbox, outbox due, then indexes to list it in (a reschedule's new
--       date and doctor)
-- ARGV: expected version, booking id, now ms, record, outbox id, outbox batch, leaves pending ('1'/'0'),
--       enters pending ('1'/'0': under the booking timeout again, from now), created ms (index score)
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', tonumber(ARGV[1]) + 1, 'data', ARGV[4])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[5])
end
if ARGV[7] == '1' then redis.call('ZREM', KEYS[2], ARGV[2]) end
if ARGV[8] == '1' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2]) end
for i = 5, #KEYS do redis.call('ZADD', KEYS[i], ARGV[9], ARGV[2]) end
return 1
