-- KEYS: visits, waiting, pos, seq, outbox, ops
-- ARGV: booking id ('' = the first waiting), op id, ',from states,', to state, kind, now ms,
--       time field, ops ttl, actor sub, actor role
local done = redis.call('HGET', KEYS[6], ARGV[2])
if done then return {1, redis.call('HGET', KEYS[1], done)} end
local booking = ARGV[1]
if booking == '' then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #first == 0 then return {-1} end
  booking = first[1]
end
local raw = redis.call('HGET', KEYS[1], booking)
if not raw then return {-2} end
local v = cjson.decode(raw)
if not string.find(ARGV[3], ',' .. v.state .. ',', 1, true) then return {0, raw} end
v.state = tonumber(ARGV[4])
v[ARGV[7]] = ARGV[6]
local visit = cjson.encode(v)
redis.call('HSET', KEYS[1], booking, visit)
redis.call('ZREM', KEYS[2], booking)
local seq = redis.call('INCR', KEYS[4])
local change = {sequence = seq, kind = tonumber(ARGV[5]), at = ARGV[6], visit = v,
                actor = {sub = ARGV[9] or '', role = ARGV[10] or ''}}
redis.call('HSET', KEYS[5], seq, cjson.encode(change))
redis.call('HSET', KEYS[6], ARGV[2], booking)
redis.call('EXPIRE', KEYS[6], ARGV[8])
return {1, visit, seq}
