-- KEYS: the input (the date's availability or its leave), resolved, tokens, slots
-- ARGV: expire at, n as read, rev, the day resolved with this input (present, capacity, start, end,
--       breaks; present '' when not resolved), collect ('1'/'0'), tag, then the input's field, value pairs
-- Replaces the input whole and the resolved day with it; with collect, answers the bookings that
-- hold a token of the day (id, token, interval), in the same step, so none is missed.
if not resolved_fresh(KEYS[2], ARGV[2], ARGV[3]) then return {'stale'} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 11))
redis.call('EXPIREAT', KEYS[1], ARGV[1])
if ARGV[4] == '' then  -- no resolution given: the next reservation resolves the day again
  redis.call('HDEL', KEYS[2], 'present', 'capacity', 'start', 'end', 'breaks')
  redis.call('HSET', KEYS[2], 'n', tonumber(ARGV[2]) + 1)
  redis.call('EXPIREAT', KEYS[2], ARGV[1])
else
  local resolved = {ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]}
  keep_resolved(KEYS[2], tonumber(ARGV[2]) + 1, ARGV[3], resolved, ARGV[1])
end
local out = {'set'}
if ARGV[9] == '1' then
  local tokens = redis.call('HGETALL', KEYS[3])
  for i = 1, #tokens, 2 do
    local id = tokens[i + 1]
    if redis.call('HGET', ARGV[10] .. ':hold:' .. id, 'state') == 'held' then
      out[#out + 1] = id
      out[#out + 1] = tokens[i]
      out[#out + 1] = redis.call('HGET', KEYS[4], id) or ''
    end
  end
end
return out
