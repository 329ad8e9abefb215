-- KEYS[1] notification:sent:<idempotency key>; ARGV[1] the claimer's token. Only its own claim is dropped:
-- a lapsed holder never frees the claim a later holder took, nor a "sent" mark.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
