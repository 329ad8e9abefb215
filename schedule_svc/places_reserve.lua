-- KEYS: hold, day, tokens, slots, service sets... (named for the cluster; built again from the tag)
-- ARGV: booking, doctor ('' none), capacity, day start, day end, start (-1: none), end, expire at,
--       waitlist ('1'/'0'), service ids (a,b), their capacities (n,m), tag, patient id ('' none),
--       the holder a reschedule moves from ('' none),
--       n, rev (-1: no resolution given), resolved present, capacity, start, end, breaks
local prior = redis.call('HMGET', KEYS[1], 'state', 'token', 'reason', 'position')
if prior[1] then return {prior[1], tonumber(prior[2] or '0'), prior[3] or '', tonumber(prior[4] or '0')} end
local tag, expire = ARGV[12], ARGV[8]
if ARGV[2] ~= '' and tonumber(ARGV[15]) >= 0 then
  local key = doc_key(tag, ARGV[2], 'resolved')
  if not resolved_fresh(key, ARGV[15], ARGV[16]) then return {'stale', 0, '', 0} end
  keep_resolved(key, ARGV[15], ARGV[16], {ARGV[17], ARGV[18], ARGV[19], ARGV[20], ARGV[21]}, expire)
end
local w = {doctor = ARGV[2], capacity = ARGV[3], dstart = ARGV[4], dend = ARGV[5], s = tonumber(ARGV[6]),
           e = tonumber(ARGV[7]), services = split(ARGV[10]), caps = split(ARGV[11]), pid = ARGV[13] or '',
           replaces = ARGV[14] or ''}
local request = {'doctor', ARGV[2], 'cap', ARGV[3], 'dstart', ARGV[4], 'dend', ARGV[5], 's', ARGV[6],
                 'e', ARGV[7], 'svcs', ARGV[10], 'caps', ARGV[11], 'pid', w.pid}
local token, reason = fits(tag, w, ARGV[1])
if token then
  take(tag, ARGV[1], w, token, expire)
  redis.call('HSET', KEYS[1], 'state', 'held', 'token', token, unpack(request))
  redis.call('EXPIREAT', KEYS[1], expire)
  return {'held', token, '', 0}
end
-- Full, or the time taken: a place like that can free up, so a booking that asked waits for it.
-- An absent doctor or a time outside the doctor's hours will not, so those are refused.
if ARGV[9] == '1' and (reason == 'capacity' or reason == 'slot') then
  local seq = redis.call('INCR', tag .. ':waitseq')
  redis.call('ZADD', tag .. ':waitlist', seq, ARGV[1])
  local line = line_key(tag, ARGV[2])
  redis.call('SADD', line, ARGV[1])
  local position = redis.call('SCARD', line)
  redis.call('HSET', KEYS[1], 'state', 'waiting', 'reason', reason, 'position', position, unpack(request))
  for _, key in ipairs({KEYS[1], tag .. ':waitseq', tag .. ':waitlist', line}) do
    redis.call('EXPIREAT', key, expire)
  end
  return {'waiting', 0, reason, position}
end
if reason == 'hours' then reason = 'slot' end
redis.call('HSET', KEYS[1], 'state', 'refused', 'reason', reason)
redis.call('EXPIREAT', KEYS[1], expire)
return {'refused', 0, reason, 0}
