-- KEYS: hold   ARGV: booking, tag, now ms, offer ms
-- About to publish an offer: it runs for offer ms from now (never less than it had), so a patient
-- told late still gets the whole time. Returns the state, token and the offer's end.
local h = redis.call('HMGET', KEYS[1], 'state', 'token', 'expires')
if h[1] ~= 'offered' then return {h[1] or '', 0, 0} end
local until_ms = math.max(tonumber(h[3] or '0'), tonumber(ARGV[3]) + tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'expires', until_ms)
redis.call('ZADD', ARGV[2] .. ':offers', until_ms, ARGV[1])
return {'offered', tonumber(h[2] or '0'), until_ms}
