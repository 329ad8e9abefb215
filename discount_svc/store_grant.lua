local prior = redis.call('GET', KEYS[2])
if prior then return prior end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], 'exhausted', 'EX', ARGV[2])
  return 'exhausted'
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('SET', KEYS[2], 'applied', 'EX', ARGV[2])
return 'applied'
