-- KEYS: visits, waiting, pos, seq, outbox, ops
-- ARGV: booking id, op id, visit JSON, now ms, ops ttl, actor sub, actor role
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  if redis.call('HGET', KEYS[6], ARGV[2]) == ARGV[1] then return {1, existing} end
  return {0, existing}
end
local v = cjson.decode(ARGV[3])
v.position = redis.call('INCR', KEYS[3])
v.state = 1
local visit = cjson.encode(v)
redis.call('HSET', KEYS[1], ARGV[1], visit)
redis.call('ZADD', KEYS[2], v.position, ARGV[1])
local seq = redis.call('INCR', KEYS[4])
local actor = {sub = ARGV[6] or '', role = ARGV[7] or ''}
local change = {sequence = seq, kind = 1, at = ARGV[4], visit = v, actor = actor}
redis.call('HSET', KEYS[5], seq, cjson.encode(change))
redis.call('HSET', KEYS[6], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[6], ARGV[5])
return {1, visit, seq}
