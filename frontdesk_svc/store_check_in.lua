-- KEYS: visits, waiting, pos, seq, outbox, ops, leaving (booking_svc's mark: a reschedule is taking
--       this booking out of this queue, or took it)
-- ARGV: booking id, op id, visit JSON, now ms, ops ttl, actor sub, actor role
-- Answers {1, visit, seq} stored; {1, visit} a retried op's first answer; {0, visit} already checked
-- in; {2} refused: the booking is leaving this queue (checked against the mark in the same script, so
-- a check-in and a reschedule of one booking never both win).
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  if redis.call('HGET', KEYS[6], ARGV[2]) == ARGV[1] then return {1, existing} end
  return {0, existing}
end
if redis.call('EXISTS', KEYS[7]) == 1 then return {2} end
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
