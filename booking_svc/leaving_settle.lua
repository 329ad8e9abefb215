-- KEYS: a booking's leaving mark
-- ARGV: the reschedule's token, ms to keep it ('0': delete it)
-- Touches the mark only if it is still this reschedule's (a lapsed lease may have let another take it).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
