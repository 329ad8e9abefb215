-- KEYS: hold   ARGV: booking, tag, now ms
-- The offered places become held, unless the offer ran out first (even if not swept yet).
local h = redis.call('HMGET', KEYS[1], 'state', 'token', 'expires', 'doctor')
if h[1] == 'held' then return {'held', tonumber(h[2] or '0')} end
if h[1] == 'offered' and tonumber(h[3]) > tonumber(ARGV[3]) then
  local doctor = h[4] or ''
  if doctor == '' then doctor = '-' end
  redis.call('HSET', KEYS[1], 'state', 'held')
  redis.call('ZREM', ARGV[2] .. ':offers', ARGV[1])
  redis.call('SREM', ARGV[2] .. ':doc:' .. doctor .. ':waiting', ARGV[1])
  return {'held', tonumber(h[2] or '0')}
end
return {h[1] or 'none', 0}
