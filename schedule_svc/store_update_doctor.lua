-- KEYS: doctor, revision   ARGV: the record as read, the new record
-- Compare-and-set on the record; every change to what a doctor's days resolve from bumps the
-- revision (the places scripts refuse a resolution older than one they have seen).
local current = redis.call('GET', KEYS[1])
if not current then return -1 end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return redis.call('INCR', KEYS[2])
