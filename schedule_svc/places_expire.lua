-- KEYS: hold   ARGV: booking, tag, now ms, offer ms, expire at
-- An offer past its time gives its places back and on to the next in line, once: compare-and-set
-- on the hold's state, so instances sweeping together (or an AcceptOffer racing) cannot both win.
local h = redis.call('HMGET', KEYS[1], 'state', 'expires', 'token')
local tag, now = ARGV[2], tonumber(ARGV[3])
if h[1] ~= 'offered' or tonumber(h[2]) > now then return {h[1] or '', ''} end
-- An offer nobody has been told of yet (its announcement still waits, e.g. NATS without a stream
-- leader) does not run out: its time starts when it is published (see _OFFER_ANNOUNCED).
if redis.call('ZSCORE', tag .. ':announce', 'o:' .. ARGV[1]) then return {'offered', ''} end
local w = load_w(KEYS[1])
free(tag, ARGV[1], w, tonumber(h[3] or '0'))
redis.call('ZREM', tag .. ':offers', ARGV[1])
redis.call('SREM', line_key(tag, w.doctor), ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'expired')
redis.call('ZADD', tag .. ':announce', now, 'x:' .. ARGV[1])
return {'expired', offer_next(tag, now, tonumber(ARGV[4]), ARGV[5])}
