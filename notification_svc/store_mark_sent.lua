redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
