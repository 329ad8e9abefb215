-- KEYS: patient, phone index, email index (or a placeholder)   ARGV: id, record, has email
local existing = redis.call('GET', KEYS[2])
if existing then return {0, existing} end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] == '1' then redis.call('SADD', KEYS[3], ARGV[1]) end
return {1, ARGV[1]}
