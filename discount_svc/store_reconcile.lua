local holders = redis.call('SCARD', KEYS[2])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[1] == '1' and used ~= holders then
  redis.call('SET', KEYS[1], holders)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return {used, holders}
