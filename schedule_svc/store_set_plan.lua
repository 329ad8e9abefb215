-- KEYS: doctor, revision, plans   ARGV: effective from, plan
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return redis.call('INCR', KEYS[2])
