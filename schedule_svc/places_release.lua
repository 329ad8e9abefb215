-- KEYS: hold, day, tokens, slots, service sets...   ARGV: booking, expire at, tag, now ms, offer ms
-- Returns {state, the booking now offered the freed places or ''}.
local state = redis.call('HGET', KEYS[1], 'state')
local tag, now, offer_ms = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
if state == 'held' or state == 'offered' then
  local token = tonumber(redis.call('HGET', KEYS[1], 'token') or '0')
  if state == 'held' then  -- a hold from before requests were kept in it names its keys in KEYS
    if token > 0 and redis.call('HGET', KEYS[3], token) == ARGV[1] then redis.call('HDEL', KEYS[3], token) end
    redis.call('HDEL', KEYS[4], ARGV[1])
    for i = 5, #KEYS do redis.call('SREM', KEYS[i], ARGV[1]) end
    local pid = redis.call('HGET', KEYS[1], 'pid')
    if pid and pid ~= '' then redis.call('HDEL', tag .. ':patient:' .. pid, ARGV[1]) end
  else
    local w = load_w(KEYS[1])
    free(tag, ARGV[1], w, token)
    redis.call('ZREM', tag .. ':offers', ARGV[1])
    redis.call('SREM', line_key(tag, w.doctor), ARGV[1])
  end
  redis.call('HSET', KEYS[1], 'state', 'released')
  return {'released', offer_next(tag, now, offer_ms, ARGV[2])}
end
if state == 'waiting' then
  redis.call('ZREM', tag .. ':waitlist', ARGV[1])
  redis.call('SREM', line_key(tag, redis.call('HGET', KEYS[1], 'doctor') or ''), ARGV[1])
  redis.call('HSET', KEYS[1], 'state', 'left')
  return {'left', ''}
end
if not state then
  redis.call('HSET', KEYS[1], 'state', 'closed')
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
  return {'closed', ''}
end
return {state, ''}
