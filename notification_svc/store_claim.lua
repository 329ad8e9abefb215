-- KEYS[1] notification:sent:<idempotency key>; ARGV[1] the claimer's token ("claim:..."), ARGV[2] lease ms.
-- "1" is sent (never again); a token is a live claim; nothing is free. Run twice (a retried EVALSHA),
-- the holder's own token answers "claimed" again.
local held = redis.call('GET', KEYS[1])
if held == '1' then return 'sent' end
if held == ARGV[1] then return 'claimed' end
if held then return 'held' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 'claimed'
