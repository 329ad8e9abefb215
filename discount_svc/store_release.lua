local prior = redis.call('GET', KEYS[2])
if prior == 'applied' then
  if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
  redis.call('SREM', KEYS[3], ARGV[2])
  redis.call('SET', KEYS[2], 'released', 'EX', ARGV[1])
  return 'released'
end
if not prior then
  redis.call('SET', KEYS[2], 'closed', 'EX', ARGV[1])
  return 'closed'
end
return prior
