-- KEYS: this booking's leaving mark in the queue it is in
-- ARGV: booking id, the reschedule's token, lease ms, that queue's visits (frontdesk_svc's hash)
-- The visits key comes in ARGV, not KEYS: Redis checks a script's declared keys as read-write, and
-- booking_svc may only read a queue's visits (%R~ in its ACL; the HEXISTS below is checked as a
-- read). It shares the mark's hash tag, so it lives in the same slot on a cluster.
-- 1: taken now; 2: already this reschedule's (a retry of its request_id); 0: the patient has checked in here;
-- -1: another reschedule of this booking holds the mark, or one already took the booking out.
local mark = redis.call('GET', KEYS[1])
if mark == ARGV[2] then return 2 end
if redis.call('HEXISTS', ARGV[4], ARGV[1]) == 1 then return 0 end
if mark then return -1 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
