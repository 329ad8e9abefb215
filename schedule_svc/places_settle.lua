-- KEYS: resolved   ARGV: expire at, n, rev, present, capacity, start, end, breaks
-- Keep a resolution of the day unless the slot has moved past it (1), or answer stale (0). After
-- it, every script of this slot that judges a booking (fits) sees this day or a newer one.
if not resolved_fresh(KEYS[1], ARGV[2], ARGV[3]) then return 0 end
keep_resolved(KEYS[1], ARGV[2], ARGV[3], {ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]}, ARGV[1])
return 1
